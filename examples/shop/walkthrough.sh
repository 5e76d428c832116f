#!/usr/bin/env bash
# Walks the shop through its gateway and shows the workshop's bug: one order
# paid twice. Needs only curl, sed and grep.
#
#   examples/shop/walkthrough.sh [GATEWAY_URL]     (default http://localhost:8000)
#
# After `tether up` the gateway is forwarded to http://localhost:8000. Each
# step prints the request and the gateway's answer with its HTTP status.
set -euo pipefail

base="${1:-http://localhost:8000}"
base="${base%/}"
user="shopper-$(date +%s)-$RANDOM"
password="correct horse battery staple"
reply=""
code=""

# call METHOD PATH [JSON BODY]: prints the exchange; sets $reply and $code.
call() {
    local method="$1" path="$2" body="${3:-}" out
    local args=(-sS -X "$method" -w '\n%{http_code}' "$base$path")
    if [[ -n "${token:-}" ]]; then
        args+=(-H "Authorization: Bearer $token")
    fi
    if [[ -n "$body" ]]; then
        args+=(-H 'Content-Type: application/json' -d "$body")
    fi
    echo "> $method $path ${body}"
    if ! out="$(curl "${args[@]}")"; then
        echo "cannot reach the gateway at $base (is 'tether up' running?)" >&2
        exit 1
    fi
    code="$(printf '%s\n' "$out" | tail -n 1)"
    reply="$(printf '%s\n' "$out" | sed '$d')"
    echo "< HTTP $code $reply"
    echo
}

# field NAME: the string or number value of the key "NAME" in $reply (the
# replies this script reads have one such key).
field() {
    printf '%s\n' "$reply" | sed -n "s/.*\"$1\":\"\{0,1\}\([^\",}]*\).*/\1/p"
}

echo "== 1. Sign up as $user"
call POST /api/v1/users/signup "{\"username\":\"$user\",\"password\":\"$password\"}"

echo "== 2. Log in"
call POST /api/v1/users/login "{\"username\":\"$user\",\"password\":\"$password\"}"
token="$(field token)"
if [[ -z "$token" ]]; then
    echo "no token in the login answer: the gateway answered HTTP $code $reply: stopping" >&2
    if [[ "$code" == 401 ]]; then
        echo "(users-svc keeps accounts in memory: if it restarted after step 1, the account is gone; run the walkthrough again)" >&2
    fi
    exit 1
fi

echo "== 3. List the products"
call GET /api/v1/products

echo "== 4. Search by name, then by category"
call GET /api/v1/products/search/sunglasses
call GET /api/v1/products/category/footwear

echo "== 5. Order Loafers and Sunglasses"
call POST /api/v1/order/create '{"product_ids":["L9ECAV7KIM","UJZDE8GXD6"]}'
order_id="$(field id)"
amount="$(field amount)"
if [[ -z "$order_id" || -z "$amount" ]]; then
    echo "no order id or amount in the answer: the gateway answered HTTP $code $reply: stopping" >&2
    exit 1
fi

echo "== 6. Pay order $order_id ($amount)"
call POST /api/v1/payments/pay "{\"order_id\":\"$order_id\",\"amount\":$amount}"
payment_id="$(field id)"
call GET "/api/v1/payments/status/$payment_id"
call GET "/api/v1/order/$order_id"

echo "== 7. Pay the same order again"
call POST /api/v1/payments/pay "{\"order_id\":\"$order_id\",\"amount\":$amount}"

case "$code" in
201) echo "The order was paid TWICE: that is the bug this workshop fixes." ;;
403) echo "The second payment was refused: the fix is live." ;;
*) echo "Unexpected answer to the second payment (HTTP $code)." ;;
esac
