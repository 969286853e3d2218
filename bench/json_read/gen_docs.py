#!/usr/bin/env python3
"""gen_docs.py OUTDIR — the documents of the JSON reader benchmark (bench/json_read/bench.c),
the same bytes on every run (a fixed-seed generator; no data files in the tree).

  jsonlist.json  the jsonlist document of /work/shared/bench/compare.sh and zerohttpd's
                 /json/list?n=100: 100 objects, item i {"id":i,"name":"item-<i>",
                 "price":i*1.25,"tags":["alpha","beta"],"active":<i even>}; compact (~7 KiB)
  twitter.json   a search-API-like answer (~600 KiB): 200 statuses with nested user,
                 entities and retweeted statuses, long texts in Latin, Japanese, Greek and
                 emoji, URLs with escaped slashes; pretty-printed with one-space indent.
                 Even statuses are written with \\uXXXX escapes for every non-ASCII
                 character (emoji as surrogate pairs, as Twitter's API does), odd ones as
                 raw UTF-8, so both string paths are measured.
"""
import json
import os
import random
import sys

WORDS_LATIN = ("lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor "
               "incididunt ut labore et dolore magna aliqua zerohttp json parser benchmark "
               "caf\u00e9 na\u00efve r\u00e9sum\u00e9 \u00fcber stra\u00dfe").split()
WORDS_JA = ("\u4eca\u65e5 \u306f \u3044\u3044 \u5929\u6c17 \u3067\u3059 \u6771\u4eac "
            "\u30e9\u30fc\u30e1\u30f3 \u30b3\u30fc\u30d2\u30fc \u30d7\u30ed\u30b0\u30e9\u30e0 "
            "\u30b5\u30fc\u30d0\u30fc").split()
WORDS_EL = "\u03b1\u03b2\u03b3 \u03ba\u03b1\u03bb\u03b7\u03bc\u03ad\u03c1\u03b1 \u03ba\u03cc\u03c3\u03bc\u03b5".split()
EMOJI = ["\U0001F600", "\U0001F680", "\u2764\ufe0f", "\U0001F44D", "\u2728"]


def text(rng, n):
    out = []
    for _ in range(n):
        k = rng.random()
        if k < 0.55:
            out.append(rng.choice(WORDS_LATIN))
        elif k < 0.85:
            out.append(rng.choice(WORDS_JA))
        elif k < 0.93:
            out.append(rng.choice(WORDS_EL))
        else:
            out.append(rng.choice(EMOJI))
    return " ".join(out)


def user(rng, uid):
    return {
        "id": uid, "id_str": str(uid),
        "name": text(rng, 2), "screen_name": "user_%d" % uid,
        "location": rng.choice(["Tokyo", "\u6771\u4eac", "Paris", "", "Ath\u00e8nes"]),
        "description": text(rng, rng.randint(10, 40)),
        "url": "https://example.com/u/%d" % uid,
        "entities": {"url": {"urls": [{"url": "https://t.co/%x" % uid,
                                       "expanded_url": "https://example.com/u/%d" % uid,
                                       "indices": [0, 23]}]},
                     "description": {"urls": []}},
        "protected": False, "followers_count": rng.randint(0, 100000),
        "friends_count": rng.randint(0, 5000), "listed_count": rng.randint(0, 100),
        "created_at": "Sun Aug 31 00:%02d:%02d +0000 2014" % (rng.randint(0, 59), rng.randint(0, 59)),
        "favourites_count": rng.randint(0, 1000), "utc_offset": None, "time_zone": None,
        "geo_enabled": rng.random() < 0.5, "verified": False,
        "statuses_count": rng.randint(0, 50000), "lang": rng.choice(["ja", "en", "el"]),
        "profile_background_color": "C0DEED",
        "profile_image_url": "http://pbs.twimg.com/profile_images/%d/normal.jpeg" % uid,
        "profile_use_background_image": True, "default_profile": rng.random() < 0.5,
        "following": False, "follow_request_sent": False, "notifications": False,
    }


def status(rng, sid, depth=0):
    body = text(rng, rng.randint(8, 30))
    s = {
        "metadata": {"result_type": "recent", "iso_language_code": rng.choice(["ja", "en"])},
        "created_at": "Sun Aug 31 00:29:%02d +0000 2014" % rng.randint(0, 59),
        "id": 505874924095815700 + sid, "id_str": str(505874924095815700 + sid),
        "text": body + " https://t.co/abc%d" % sid,
        "source": "<a href=\"http://twitter.com/download/iphone\" rel=\"nofollow\">"
                  "Twitter for iPhone</a>",
        "truncated": False, "in_reply_to_status_id": None, "in_reply_to_user_id": None,
        "user": user(rng, 1186275104 + sid),
        "geo": None, "coordinates": None, "place": None, "contributors": None,
        "retweet_count": rng.randint(0, 1000), "favorite_count": rng.randint(0, 1000),
        "entities": {
            "hashtags": [{"text": rng.choice(WORDS_JA), "indices": [i, i + 5]}
                         for i in range(rng.randint(0, 3))],
            "symbols": [],
            "urls": [{"url": "https://t.co/abc%d" % sid,
                      "expanded_url": "https://example.com/a/%d?q=1&r=%s" % (sid, "x" * 20),
                      "display_url": "example.com/a/%d\u2026" % sid, "indices": [1, 24]}],
            "user_mentions": [{"screen_name": "user_%d" % (sid * 7 % 1000), "name": text(rng, 2),
                               "id": sid * 7, "id_str": str(sid * 7), "indices": [3, 12]}],
        },
        "favorited": False, "retweeted": False, "possibly_sensitive": rng.random() < 0.1,
        "lang": rng.choice(["ja", "en", "el"]),
        "score": round(rng.uniform(-100, 100), 6),
    }
    if depth == 0 and rng.random() < 0.3:
        s["retweeted_status"] = status(rng, sid + 100000, depth + 1)
    return s


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    items = []
    for i in range(100):
        p = i * 1.25
        items.append('{"id":%d,"name":"item-%d","price":%s,"tags":["alpha","beta"],"active":%s}'
                     % (i, i, "%d" % p if p == int(p) else repr(p), "false" if i % 2 else "true"))
    with open(os.path.join(out, "jsonlist.json"), "w") as f:
        f.write("[" + ",".join(items) + "]")
    rng = random.Random(20260101)
    statuses = [json.dumps(status(rng, i), ensure_ascii=(i % 2 == 0), indent=1)
                for i in range(200)]
    meta = json.dumps({"completed_in": 0.087, "max_id": 505874924095815700, "query": "%E4%B8%80",
                       "next_results": "?max_id=505874847260352512&q=%E4%B8%80&count=100",
                       "count": 200, "since_id": 0, "refresh_url": "?since_id=5058749&q=x"},
                      indent=1)
    doc = '{\n "statuses": [\n' + ",\n".join(statuses) + '\n ],\n "search_metadata": ' + meta + "\n}\n"
    # JSON escapes '/' only if asked: a few escaped slashes, as Twitter writes URLs
    doc = doc.replace("https://t.co/", "https:\\/\\/t.co\\/")
    with open(os.path.join(out, "twitter.json"), "wb") as f:
        f.write(doc.encode("utf-8"))
    json.loads(doc)  # it is JSON


if __name__ == "__main__":
    main()
