//! Byte offsets to `file:line:col`, the form editors and terminals make clickable.

use std::{fmt, ops::Range, path::PathBuf};

/// A place in a config file, 1-based like compilers print it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub file: PathBuf,
    pub line: usize,
    pub col: usize,
}

impl Location {
    /// The location of byte `offset` in `text`, counting columns in characters.
    pub fn at(file: PathBuf, text: &str, offset: usize) -> Location {
        let offset = offset.min(text.len());
        let before = &text[..floor_char_boundary(text, offset)];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let col = before[line_start..].chars().count() + 1;
        Location { file, line, col }
    }

    pub fn of_span(file: PathBuf, text: &str, span: Range<usize>) -> Location {
        Location::at(file, text, span.start)
    }
}

fn floor_char_boundary(text: &str, mut i: usize) -> usize {
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.col)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_columns_are_one_based() {
        let text = "a = 1\nbé = 2\n";
        let at = |o| {
            let l = Location::at("t.toml".into(), text, o);
            (l.line, l.col)
        };
        assert_eq!(at(0), (1, 1));
        assert_eq!(at(6), (2, 1));
        // 'é' is two bytes but one column.
        assert_eq!(at(9), (2, 3));
        assert_eq!(at(999), (3, 1));
    }
}
