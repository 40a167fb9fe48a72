"""Reads `callgrind_annotate --inclusive=yes` output of one verify/<ALG> criterion run and prints
a markdown row: the share of jsonwebtoken::decode's instructions spent in aws-lc's signature
check, and the rest (header and claims parsing, base64, key set-up, claim checks).

Usage: callgrind_annotate --inclusive=yes FILE | python3 bench/verify_share.py ALG
"""

import re
import sys

# The signature check of each algorithm, as aws-lc names it.
PRIMITIVE = {"ES256": r"_ECDSA_do_verify\b", "EdDSA": r"_ED25519_verify\b", "RS256": r"_RSA_verify\b"}


def instructions(lines, pattern):
    for line in lines:
        if re.search(pattern, line):
            return int(line.split()[0].replace(",", ""))
    return 0


def main():
    alg = sys.argv[1]
    lines = sys.stdin.read().splitlines()
    total = instructions(lines, r"jsonwebtoken::decoding::decode\b")
    signature = instructions(lines, PRIMITIVE[alg])
    if not total:
        print(f"| {alg} | n/a | n/a |")
        return
    print(f"| {alg} | {signature / total:.0%} | {1 - signature / total:.0%} |")


if __name__ == "__main__":
    main()
