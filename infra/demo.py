#!/usr/bin/env python3
"""`make demo`: one scripted checkout through the local stack, end to end.

Against the functions of `make dev` (started here, and stopped afterwards, when they are not
already running): refills the demo buyer's cart, checks out through the checkout function with an
Idempotency-Key, waits for the reward worker (the dev drain loop) to complete the job, then prints
what changed in every wallet and level, the distribution the buyer sees, and whether the wallet
changes and pools add up to the purchase's reward R to the milli-point.

Standard library only. Exit status 0 when the rewards completed and conserved R, 1 otherwise.
Env: MALL_INVOKE_PORT (9000) and the variables of infra/dev.sh.
"""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PORT = os.environ.get("MALL_INVOKE_PORT", "9000")
BASE = f"http://127.0.0.1:{PORT}/lambda-url/checkout/api/cart/checkout"
ENV = dict(
    os.environ,
    MONGODB_URI=os.environ.get(
        "MONGODB_URI",
        f"mongodb://127.0.0.1:{os.environ.get('MALL_DB_PORT', '27017')}/?directConnection=true",
    ),
    MONGODB_DATABASE=os.environ.get("MONGODB_DATABASE", "mall"),
    LOCAL_JWT_SECRET=os.environ.get(
        "LOCAL_JWT_SECRET", "local-development-secret-not-for-production"
    ),
    RUST_LOG="off",
)
MALL = ROOT / "target" / "debug" / "mall"


def pts(amount):
    """An amount as the API prints it, shown with its three decimals."""
    return str(Decimal(amount).quantize(Decimal("0.001")))


def bold(text):
    return f"\033[1m{text}\033[0m" if sys.stdout.isatty() else text


def mall(*args):
    return subprocess.run(
        [str(MALL), *args], env=ENV, check=True, capture_output=True, text=True
    ).stdout.strip()


def http(method, url, token, body=None, headers=None):
    request = urllib.request.Request(url, method=method, data=body)
    request.add_header("Authorization", f"Bearer {token}")
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def stack_is_up():
    try:
        urllib.request.urlopen(f"{BASE}/000000000000000000000000", timeout=5)
    except urllib.error.HTTPError as error:
        return error.code == 401
    except OSError:
        return False
    return False


def start_stack():
    """Starts infra/dev.sh in the background and waits until checkout answers."""
    log = open(ROOT / ".local" / "dev" / "demo-dev.log", "w")
    dev = subprocess.Popen(
        [str(ROOT / "infra" / "dev.sh")], stdout=log, stderr=subprocess.STDOUT, env=ENV
    )
    print(bold("starting the local stack (make dev) for the demo; log: .local/dev/demo-dev.log"))
    deadline = time.monotonic() + 1200
    while time.monotonic() < deadline:
        if dev.poll() is not None:
            sys.exit(f"make dev stopped early (exit {dev.returncode}); see .local/dev/demo-dev.log")
        if stack_is_up():
            return dev
        time.sleep(2)
    dev.send_signal(signal.SIGTERM)
    sys.exit("the local stack did not come up in 20 minutes; see .local/dev/demo-dev.log")


def wallets():
    return {c["username"]: c for c in json.loads(mall("customers", "--json", "--limit", "1000"))}


def main():
    (ROOT / ".local" / "dev").mkdir(parents=True, exist_ok=True)
    dev = None if stack_is_up() else start_stack()
    try:
        return demo()
    finally:
        if dev is not None:
            dev.send_signal(signal.SIGTERM)
            dev.wait(timeout=60)


def demo():
    buyer = mall("demo-seed")
    token = mall("token", "--customer", buyer)
    before = wallets()
    buyer_name = next(name for name, c in before.items() if c["id"] == buyer)

    key = f"demo-{int(time.time() * 1000)}"
    status, receipt = http(
        "POST", BASE, token,
        body=json.dumps({"deliveryAddress": "12 Souq Waqif, Doha"}).encode(),
        headers={"Idempotency-Key": key, "Content-Type": "application/json"},
    )
    if status != 200:
        print(f"checkout answered {status}: {json.dumps(receipt)}")
        return 1
    data = receipt["data"]
    rewards = data["rewards"]
    print(bold(f"\n{buyer_name} checked out: transaction {data['transactionId']}"))
    print(f"  cart total {pts(data['cartTotal'])}, wallet now {pts(data['newWalletBalance'])}")
    print(
        f"  reward R {pts(rewards['totalRewardPoints'])} = app {pts(rewards['appShare'])}"
        f" + gifts {pts(rewards['giftsShare'])} + tree {pts(rewards['treeShare'])}"
        f" + direct referral {pts(rewards['referralShare'])}"
    )

    print("  waiting for the reward worker (make dev drains every few seconds) ", end="", flush=True)
    view = None
    for _ in range(90):
        status, view = http("GET", f"{BASE}/{data['transactionId']}", token)
        if status == 200 and view["data"]["rewards"]["status"] != "processing":
            break
        print(".", end="", flush=True)
        time.sleep(1)
    print()
    purchase = view["data"]
    if purchase["rewards"]["status"] != "completed":
        print(f"the rewards did not complete: {json.dumps(purchase)}")
        return 1

    after = wallets()
    print(bold("\nwallets and levels"))
    print(f"  {'customer':<10} {'level':<7} {'before':>12} {'after':>12} {'change':>12}")
    credited = Decimal(0)
    for name, old in before.items():
        new = after[name]
        change = Decimal(new["points"]) - Decimal(old["points"])
        # The buyer paid the cart; anything else it got (cashback, a signup gift) is a credit.
        credited += change + (Decimal(data["cartTotal"]) if name == buyer_name else 0)
        level = old["level"] if old["level"] == new["level"] else f"{old['level']}→{new['level']}"
        print(f"  {name:<10} {level:<7} {pts(old['points']):>12} {pts(new['points']):>12} {pts(change):>12}")

    dist = purchase["distribution"]
    print(bold("\ndistribution"))
    print(f"  tree distributed {pts(dist['treeDistributed'])} to {dist['recipients']} ancestors,"
          f" unused {pts(dist['treeUnused'])}, promotions {dist['promotions']}")
    print(f"  direct referral {pts(dist['directReferral'])}, gifts from the pool {pts(dist['poolGifts'])}")
    print(f"  gifts pool {pts(dist['giftsFinal'])}, app pool {pts(dist['appFinal'])}")
    # Gifts from the pool are outside R: the wallets' credits less them, plus the two pools.
    from_r = credited - Decimal(dist["poolGifts"])
    total = from_r + Decimal(dist["giftsFinal"]) + Decimal(dist["appFinal"])
    conserved = total == Decimal(rewards["totalRewardPoints"])
    print(
        f"  wallet credits {pts(from_r)} (and {pts(dist['poolGifts'])} from the gifts pool)"
        f" + gifts {pts(dist['giftsFinal'])} + app {pts(dist['appFinal'])} = {pts(total)}:"
        f" {'conserves R' if conserved else 'DOES NOT conserve R'}"
    )
    return 0 if conserved else 1


if __name__ == "__main__":
    sys.exit(main())
