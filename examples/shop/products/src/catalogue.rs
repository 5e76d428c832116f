//! The seeded catalogue: ten products, fixed at compile time.
//!
//! Chosen for the workshop: Loafers (`L9ECAV7KIM`, 89.09) and Sunglasses
//! (`UJZDE8GXD6`, 19.99) are the only two that add up to 109.08; searching
//! `glass` finds three products whatever the case; `kitchen` is the largest
//! category. Every price has a non-zero last digit, so JSON shows two
//! decimals.

use shop_common::wire::Product;

/// `(id, name, category, price)` of each product, sorted by id for listing.
const SEEDS: [(&str, &str, &str, f64); 10] = [
    ("33XTPLPFT7", "Salt & Pepper Shakers", "kitchen", 18.49),
    ("3EFR4EDT2S", "Reading Glasses", "accessories", 24.59),
    ("5V2SEH60KV", "Bamboo Glass Jar", "kitchen", 5.49),
    ("DHODZDOC9I", "Watch", "accessories", 109.99),
    ("J50CE9UVW5", "Mug", "kitchen", 8.99),
    ("L9ECAV7KIM", "Loafers", "footwear", 89.09),
    ("NCF10EPF91", "Tank Top", "clothing", 18.99),
    ("S0J8HT9LGM", "Hairdryer", "beauty", 24.99),
    ("UJZDE8GXD6", "Sunglasses", "accessories", 19.99),
    ("XG9EDN581U", "Candle Holder", "home", 12.49),
];

/// The catalogue the service starts with.
pub fn seeded() -> Vec<Product> {
    SEEDS
        .iter()
        .map(|&(id, name, category, price)| Product {
            id: id.to_owned(),
            name: name.to_owned(),
            category: category.to_owned(),
            price,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use shop_common::wire::to_cents;

    use super::*;

    #[test]
    fn ids_are_ten_upper_case_alphanumerics_and_sorted() {
        let products = seeded();
        for product in &products {
            assert_eq!(product.id.len(), 10, "{}", product.id);
            assert!(
                product
                    .id
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit()),
                "{}",
                product.id
            );
        }
        assert!(products.windows(2).all(|w| w[0].id < w[1].id));
    }

    #[test]
    fn only_loafers_and_sunglasses_make_109_08() {
        let products = seeded();
        let mut pairs = Vec::new();
        for (i, a) in products.iter().enumerate() {
            for b in &products[i + 1..] {
                if to_cents(a.price) + to_cents(b.price) == 10908 {
                    pairs.push((a.name.as_str(), b.name.as_str()));
                }
            }
        }
        assert_eq!(pairs, [("Loafers", "Sunglasses")]);
    }
}
