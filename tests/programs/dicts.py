# Dict-heavy workload for the python3 program test (run with PYTHONMALLOC=malloc,
# so every dict, str and int block comes from malloc). Deterministic: prints
# counts and a checksum that must not depend on the allocator.
import hashlib
import json
import random

rng = random.Random(20240601)
letters = "abcdefghijklmnopqrstuvwxyz"
words = ["".join(rng.choice(letters) for _ in range(rng.randint(2, 14))) for _ in range(4000)]


def record(i):
    # A small mixed record: strings, ints, a list and a nested dict.
    return {
        "id": i,
        "name": rng.choice(words) + "-" + str(i),
        "tags": [rng.choice(words) for _ in range(rng.randint(0, 6))],
        "score": rng.randint(-10**9, 10**9),
        "attrs": {rng.choice(words): rng.randint(0, 1000) for _ in range(rng.randint(1, 8))},
    }


# Many dicts of strings and ints, built and thrown away in waves.
records = [record(i) for i in range(40000)]
merged = {}
for r in records:
    for key, value in r["attrs"].items():
        merged[key] = merged.get(key, 0) + value
# Drop every third record and grow big dicts in its place (holes for reuse).
records = [r for r in records if r["id"] % 3]
index = {r["name"]: r for r in records}
by_tag = {}
for r in records:
    for tag in r["tags"]:
        by_tag.setdefault(tag, []).append(r["id"])
counts = {}
for w in words * 20:
    counts[w] = counts.get(w, 0) + len(w)
big = {f"{w}:{i}": i * len(w) for i, w in enumerate(words * 15)}
for key in list(big)[::2]:
    del big[key]

# Merge with the dict operators and dict(**) forms.
combined = {**counts, **{k: v for k, v in merged.items() if v % 2}}
combined |= {w.upper(): len(w) for w in words}

# JSON round trip with sorted keys; the result must compare equal.
text = json.dumps({"records": records[:8000], "merged": merged, "by_tag": by_tag}, sort_keys=True)
back = json.loads(text)
assert back["merged"] == merged and back["by_tag"] == by_tag
assert back["records"] == records[:8000]

digest = hashlib.sha256()
for name in sorted(index):
    digest.update(name.encode())
    digest.update(str(index[name]["score"]).encode())
for key in sorted(combined):
    digest.update(f"{key}={combined[key]};".encode())
for key in sorted(big)[:50000]:
    digest.update(key.encode())
digest.update(text.encode())

print("records", len(records), "index", len(index), "tags", len(by_tag))
print("merged", len(merged), sum(merged.values()))
print("combined", len(combined), "big", len(big), "json bytes", len(text))
print("checksum", digest.hexdigest())
