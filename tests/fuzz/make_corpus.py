#!/usr/bin/env python3
"""Writes the hand-made seed corpora of tests/fuzz/corpus/<target>/ (run from anywhere).

Each seed is a meaningful input in the harness's input format (see the comment at the top
of each fuzz_*.c): real requests, smuggling attempts, chunked bodies, traversal paths,
ranges, dates, JSON writer programs. The fuzzer mutates from these."""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


SPLIT = bytes(range(1, 9))  # split seed: any 8 bytes

# ---- fuzz_parse: mode byte (0: default limits), split seed, request bytes ---------------
parse = {
    "get": b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
    "get_full": b"GET /index.html?x=1&y=%20 HTTP/1.1\r\nHost: example.com:8080\r\n"
                b"User-Agent: curl/8.0\r\nAccept: */*\r\nConnection: keep-alive\r\n\r\n",
    "http10": b"GET /a HTTP/1.0\r\n\r\n",
    "post_cl": b"POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello",
    "post_chunked": b"POST /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                    b"5\r\nhello\r\n0\r\n\r\n",
    "pipelined": b"GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\n"
                 b"HEAD /3 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    "smuggle_cl_te": b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "smuggle_te_cl": b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
                     b"Content-Length: 4\r\n\r\n",
    "smuggle_two_cl": b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n"
                      b"Content-Length: 5\r\n\r\n",
    "smuggle_cl_list": b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 4, 4\r\n\r\n",
    "smuggle_te_space": b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding : chunked\r\n\r\n",
    "smuggle_te_gzip": b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
    "smuggle_te_twice": b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
                        b"Transfer-Encoding: chunked\r\n\r\n",
    "smuggle_te_10": b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
    "smuggle_obs_fold": b"GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n",
    "smuggle_bare_lf": b"GET / HTTP/1.1\nHost: h\n\n",
    "smuggle_bare_cr": b"GET / HTTP/1.1\r\nHost: h\rX: y\r\n\r\n",
    "nul_in_value": b"GET / HTTP/1.1\r\nHost: h\r\nX: a\x00b\r\n\r\n",
    "two_hosts": b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    "absolute": b"GET http://example.com:80/p?q HTTP/1.1\r\nHost: other\r\n\r\n",
    "absolute_v6": b"GET https://[::1]:8443/ HTTP/1.1\r\nHost: [::1]:8443\r\n\r\n",
    "userinfo": b"GET http://u@h/ HTTP/1.1\r\nHost: h\r\n\r\n",
    "asterisk": b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n",
    "expect": b"PUT /f HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n",
    "expect_bad": b"PUT /f HTTP/1.1\r\nHost: h\r\nExpect: 200-ok\r\n\r\n",
    "leading_crlf": b"\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n",
    "http2": b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    "http12": b"GET / HTTP/1.2\r\nHost: h\r\n\r\nGET / HTTP/1.9\r\n\r\n",
    "http30_bad_versions": b"GET / HTTP/3.0\r\nHost: h\r\n\r\nGET / HTTP/01.1\r\n\r\n",
    "unknown_method": b"BREW /pot HTTP/1.1\r\nHost: h\r\n\r\n",
    "tabs": b"GET / HTTP/1.1\r\nHost:\th\t\r\nX-A: \ta\tb \r\n\r\n",
    "pct": b"GET /%2e%2e/%2F%00?%zz HTTP/1.1\r\nHost: h\r\n\r\n",
}
for name, req in parse.items():
    write("parse", name, b"\x00" + SPLIT + req)
# tiny limits: 414 (request line), 431 (header bytes, header count)
write("parse", "limits_414", bytes([0x01]) + SPLIT + b"GET /aaaaaaaaaaaaaaaaaaaaaaaa HTTP/1.1\r\nHost: h\r\n\r\n")
write("parse", "limits_431", bytes([0x07 | 0x08]) + SPLIT + b"GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n")

# ---- fuzz_chunked: mode byte, split seed, body -------------------------------------------
chunked = {
    "simple": b"5\r\nhello\r\n0\r\n\r\n",
    "two": b"3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\nGET / HTTP/1.1\r\n",
    "ext": b"a;name=value;x=\"q\"\r\n0123456789\r\n0\r\n\r\n",
    "bws": b"2 \t;e\r\nhi\r\n0\r\n\r\n",
    "trailers": b"1\r\nx\r\n0\r\nExpires: never\r\nX-Sum: 1\r\n\r\n",
    "upper_hex": b"1A\r\n" + b"z" * 26 + b"\r\n0\r\n\r\n",
    "leading_zeros": b"0000000000000004\r\nabcd\r\n0\r\n\r\n",
    "overflow": b"10000000000000000\r\n",
    "huge": b"ffffffffffffffff\r\n",
    "bad_lf": b"3\nabc\n0\n\n",
    "missing_crlf": b"3\r\nabcX\r\n",
    "neg": b"-1\r\n",
    "ext_ctl": b"1;a\x01\r\nx\r\n0\r\n\r\n",
    "trailer_fold": b"0\r\nA: b\r\n c\r\n\r\n",
    "empty_size": b"\r\n",
    "size_bws_no_ext": b"3 \r\nabc\r\n0\t\r\n\r\n",
    "size_bws_tab_ext": b"3\t;a\r\nabc\r\n0 ;e=1\r\n\r\n",
}
for name, body in chunked.items():
    write("chunked", name, b"\x00" + SPLIT + body)
write("chunked", "max_body", bytes([0x02]) + SPLIT + b"8\r\n12345678\r\n0\r\n\r\n")

# ---- fuzz_path: flags byte (bit 0 dotfiles, bit 1 small cap), path ------------------------
paths = {
    "root": b"/",
    "plain": b"/css/site.css",
    "dir": b"/docs/",
    "dots": b"/a/./b/../c",
    "enc_dots": b"/%2e%2e/etc/passwd",
    "enc_dot_mixed": b"/.%2E/x",
    "enc_slash": b"/a%2Fb",
    "double_slash": b"//a///b//",
    "dotfile": b"/.git/config",
    "dotfile_enc": b"/%2egit/config",
    "backslash": b"/a\\..\\b",
    "nul": b"/a%00b",
    "bad_pct": b"/a%2",
    "utf8": b"/caf%C3%A9/%E2%82%AC.txt",
    "unreserved_enc": b"/%70rivate/%7Efile",
    "unreserved_lower": b"/h%65llo%2etxt/%7e%2d%5f/caf%c3%a9",
    "enc_dot_inside": b"/a%2Eb/%2E/c%2E%2E",
    "dot_end": b"/a/.",
    "dotdot_end": b"/a/..",
    "empty": b"",
}
for name, p in paths.items():
    write("path", name, b"\x00" + p)
write("path", "dotfile_on", b"\x01/.well-known/x")
write("path", "small_cap", b"\x02/aaaa/bbbb/./cccc")

# ---- fuzz_range: selector byte, 8-byte number, text ---------------------------------------
def rng(sel, num, text):
    return bytes([sel]) + struct.pack(">Q", num) + text

ranges = {
    "range_one": rng(0, 1000, b"bytes=0-499"),
    "range_open": rng(0, 1000, b"bytes=500-"),
    "range_suffix": rng(0, 1000, b"bytes=-200"),
    "range_many": rng(0, 1000, b"bytes=0-0, 10-19,\t-1"),
    "range_overlap": rng(0, 1000, b"bytes=0-10,5-20"),
    "range_unsat": rng(0, 10, b"bytes=20-30"),
    "range_empty_file": rng(0, 0, b"bytes=-5"),
    "range_big": rng(0, 2**64 - 1, b"bytes=18446744073709551614-"),
    "range_overflow": rng(0, 1000, b"bytes=99999999999999999999-"),
    "range_bad_unit": rng(0, 1000, b"items=0-1"),
    "range_reversed": rng(0, 1000, b"bytes=5-1"),
    "inm_star": rng(1, 0x5f5e1000, b"*"),
    "inm_list": rng(1, 0x5f5e1000, b"\"x\", W/\"y\" ,\"z\""),
    "date_ok": rng(2, 0, b"Sun, 06 Nov 1994 08:49:37 GMT"),
    "date_bad_day": rng(2, 0, b"Sun, 32 Nov 1994 08:49:37 GMT"),
    "date_bad_month": rng(2, 0, b"Sun, 06 Ja  1994 08:49:37 GMT"),
    "date_rfc850": rng(2, 0, b"Sunday, 06-Nov-94 08:49:37 GMT"),
    "date_rfc850_now": rng(2, 1796601600, b"Wednesday, 07-Dec-76 08:49:37 GMT"),
    "date_rfc850_past_century_clock": rng(2, 0, b"Sunday, 06-Nov-02 08:49:37 GMT"),
    "date_asctime": rng(2, 1796601600, b"Sun Nov  6 08:49:37 1994"),
    "date_asctime_2digit": rng(2, 0, b"Sun Nov 16 08:49:37 1994"),
    "if_match_weak": rng(1, 0x5f5e1000, b"W/\"x\", \"y\""),
    "date_fmt": rng(3, 784111777, b""),
    "date_fmt_far": rng(3, 253402300799, b""),
    "coding_plain": rng(4, 0, b"gzip, deflate, br"),
    "coding_q": rng(4, 0, b"br;q=0.8, gzip;q=1.0, *;q=0"),
    "coding_ows": rng(4, 0, b"gzip ; q=0.5 ,identity"),
    "coding_gen": rng(5, 0x0102030405060708, b"\x01\x02\x03\x04\x05\x06\x07\x08"),
    "coding_htab": rng(4, 0, b"*, gzip\t;q=0"),
    # regressions: HTAB around a coding hid its q=0 behind "*"; invalid dates were accepted
    "regress_coding_htab": b"\x13\x00\x00\x00,\x00\x00\x03\xe8it\xe8ms\xf4\xf4A\x7f",
    "date_far_future": rng(3, 2**62, b""),
    "date_far_past": rng(3, 2**64 - 2**62, b""),
    "range_gen": rng(6, 5000, b"\x10\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x63"),
}
for name, data in ranges.items():
    write("range", name, data)

# ---- fuzz_json: flags byte, window seed, then ops (see fuzz_json.c) ------------------------
OBJ, ARR, END, KEY, STR, I64, U64, DBL, BOOL, NUL = range(10)


def s(op, text):
    return bytes([op, len(text)]) + text


def num(op, v):
    return bytes([op]) + v


jsons = {
    "object": bytes([OBJ]) + s(KEY, b"id") + num(U64, struct.pack(">Q", 7)) + s(KEY, b"name")
    + s(STR, b"zero\"http\n") + bytes([END]),
    "nested": bytes([ARR, OBJ]) + s(KEY, b"a") + bytes([ARR, NUL, BOOL, 1, END, END, END]),
    "doubles": bytes([ARR]) + num(DBL, struct.pack(">d", 0.1)) + num(DBL, struct.pack(">d", -0.0))
    + num(DBL, struct.pack(">d", 5e-324)) + num(DBL, struct.pack(">d", 1.7976931348623157e308))
    + num(DBL, struct.pack(">d", 123.456)) + bytes([END]),
    "nan": bytes([ARR]) + num(DBL, struct.pack(">d", float("nan"))) + bytes([END]),
    "ints": bytes([ARR]) + num(I64, struct.pack(">q", -2**63)) + num(U64, struct.pack(">Q", 2**64 - 1))
    + bytes([END]),
    "utf8": bytes([ARR]) + s(STR, "caf\u00e9 \u20ac \U0001F600".encode()) + bytes([END]),
    "bad_utf8": bytes([ARR]) + s(STR, b"a\xc0\xafb\xed\xa0\x80c\xf4\x90\x80\x80d\xe2\x82") + bytes([END]),
    "html": s(STR, "<script>&\u2028\u2029</script>".encode()),
    "misuse": bytes([OBJ]) + s(STR, b"value where a key is due"),
    "deep": bytes([ARR]) * 70,
    "long_string": s(STR, bytes(range(256))[32:] * 1),
}
for name, prog in jsons.items():
    write("json", name, b"\x00\x00" + prog)
write("json", "html_flag", b"\x01\x00" + jsons["html"])
write("json", "strict_flag", b"\x02\x00" + jsons["bad_utf8"])
# regressions: a key accepted after the top-level object closed; ':' written after a key
# that failed (STRICT), and a second window asked for after a refused one
write("json", "regress_key_after_document", b"\x00\x00" + bytes([OBJ, END]) + s(KEY, b"k"))
write("json", "regress_strict_key", b"\x02\x00" + bytes([OBJ]) + s(KEY, b"bad \xff key"))
write("json", "regress_refused_key", b"\x08\xff" + bytes([OBJ]) + s(KEY, b"k" * 200))
write("json", "tiny_windows", b"\x00\xff" + jsons["object"])

# ---- fuzz_form: selector byte (bits 0-5 pair index, 6 absent name, 7 short buffer), then
# the query string or urlencoded body -------------------------------------------------------
forms = {
    "simple": b"\x00a=1&b=2",
    "repeated": b"\x02a=1&b=2&a=3",
    "plus_pct": b"\x81a+b=c+d&%41%62=%7e%7E%2B",
    "empty_pairs": b"\x01&&a=1&&&b=&flag",
    "bad_escapes": b"\x01%zz=1&a=%4&b=%&c=%%41",
    "bad_name_before": b"\x01x%zz=1&a=2",
    "utf8": b"\x80n=%C3%A9t%C3%A9&e=%E2%82%AC",
    "absent": b"\x40a=1&b=2",
    "nul": b"\x00a%00b=1&c=%00",
    "many": b"\x05" + b"&".join(b"k%d=%d" % (i % 7, i) for i in range(1001)),
}
for name, data in forms.items():
    write("form", name, data)

# ---- fuzz_multipart: flags byte (bits 0-2 Content-Type table index, 3 max_parts 3, 4 max
# header 64), 8 split-seed bytes, then the body ------------------------------------------------
def mp(parts, b=b"AaB03x", close=True, pre=b"", post=b""):
    body = pre
    for headers, data in parts:
        body += b"--" + b + b"\r\n" + b"".join(h + b"\r\n" for h in headers) + b"\r\n" + data + b"\r\n"
    return body + (b"--" + b + b"--" + post if close else b"")

CD = b'Content-Disposition: form-data; name="%s"'
multiparts = {
    "one": (0, mp([([CD % b"a"], b"1")])),
    "file": (0, mp([([CD % b"f" + b'; filename="x.bin"', b"Content-Type: application/octet-stream"],
                     bytes(range(256)))])),
    "near_delims": (0, mp([([CD % b"x"], b"\r\r\n\r\n-\r\n--\r\n--A\r\n--AaB03\r\n--aAB03x")])),
    "rfc2046": (1, mp([([CD % b"a"], b"implicitly typed"), ([CD % b"b", b"Content-type: text/plain"],
                                                             b"explicit\r\n")],
                      b"simple boundary", pre=b"preamble\r\n", post=b"\r\nepilogue")),
    "dash": (2, mp([([CD % b"d"], b"-- - ---")], b"-")),
    "quoted_params": (3, mp([([b'content-disposition: FORM-DATA; NAME="a\\"b"; filename="c\\\\d"'],
                              b"v")], b"--x")),
    "padding": (4, b"--a \t\r\n" + CD % b"p" + b"\r\n\r\n\r\n--a--"),
    "webkit": (5, mp([([CD % b"k"], b"v"), ([CD % b"k2"], b"")],
                     b"----WebKitFormBoundary7MA4YWxkTrZu0gW")),
    "max_parts": (0x08, mp([([CD % (b"p%d" % i)], b"%d" % i) for i in range(4)])),
    "max_header": (0x10, mp([([CD % b"long" + b"; filename=\"" + b"n" * 60 + b"\""], b"x")])),
    "truncated": (0, mp([([CD % b"a"], b"no end")], close=False)),
    "garbage_after_delim": (0, b"--AaB03xY\r\n"),
    "no_disposition": (0, mp([([b"Content-Type: text/plain"], b"x")])),
    "bchars": (7, mp([([CD % b"s"], b"(x)+_,-./:=?")], b"(x)+_,-./:=?")),
}
for name, (flags, body) in multiparts.items():
    write("multipart", name, bytes([flags]) + SPLIT + body)

# ---- fuzz_cookie: mode byte (bit 0 clear: parse the rest as a Cookie value; set: build a
# Set-Cookie from NUL-separated name, value, path, domain; bits 1-2 SameSite, 3 Secure,
# 4 HttpOnly, 5 Max-Age and 6 Expires, 8 bytes each) -------------------------------------
cookies = {
    "rfc6265": b"\x00SID=31d4d96e407aad42; lang=en-US",
    "lenient": b"\x00a=1;b=\"q v\" ; junk; =x;;  c = 3\t",
    "quotes": b"\x00q=\"\"; r=\"abc; s=\"",
    "build_min": b"\x01SID\x0031d4d96e407aad42",
    "build_all": bytes([0x01 | 2 << 1 | 0x08 | 0x10 | 0x20 | 0x40]) + struct.pack(">Q", 3600)
                 + struct.pack(">Q", 1623233894 + 100000000000) + b"id\x00\"v\"\x00/\x00example.com",
    "build_none_insecure": bytes([0x01 | 3 << 1]) + b"a\x00b",
    "build_bad_value": b"\x01a\x00x;y",
    "build_bad_path": b"\x01a\x00b\x00/x; Domain=evil",
}
for name, data in cookies.items():
    write("cookie", name, data)
# ---- fuzz_forwarded: flags byte (bit 0 Forwarded, bit 1 also a CIDR list), field value ---
forwarded = {
    "rfc7239": b"for=192.0.2.60;proto=http;by=203.0.113.43",
    "list": b"for=192.0.2.43, for=198.51.100.17",
    "v6_port": b'for="[2001:db8:cafe::17]:4711"',
    "v4_port": b'for="192.0.2.43:47011"',
    "unknown_obf": b"for=unknown, for=_hidden, for=\"10.0.0.1:_p\"",
    "no_for": b"proto=https;by=10.0.0.9",
    "quoted_comma": b'for=10.0.0.1;x="a,b", for=10.0.0.2',
    "bad_escape": b'for="10.0.0\\.1"',
}
for name, v in forwarded.items():
    write("forwarded", name, b"\x01" + v)
xff = {
    "chain": b"203.0.113.7, 10.0.0.1,10.0.0.2",
    "v6": b"2001:db8::1, ::1, [2001:db8::2]:443, ::ffff:203.0.113.7",
    "ports": b"203.0.113.7:5555, unknown",
    "junk": b"proxy.example, 1.2.3.4.5, fe80::1%eth0",
}
for name, v in xff.items():
    write("forwarded", "xff_" + name, b"\x00" + v)
write("forwarded", "cidrs", b"\x02127.0.0.0/8, ::1 10.1.2.3/8,2001:db8::/33")

# ---- fuzz_json_read: flags byte (bits 0-3 max_depth, 0: 64; bits 4-7 tokens/2, 0: 4096),
# then the document (see fuzz_json_read.c) -------------------------------------------------
json_read = {
    "object": b'{"id":7,"name":"item-7","price":8.75,"tags":["alpha","beta"],"active":false}',
    "jsonlist": b'[{"id":0,"name":"item-0","price":0,"tags":["alpha","beta"],"active":true},'
                b'{"id":1,"name":"item-1","price":1.25,"tags":["alpha","beta"],"active":false}]',
    "scalars": b' [null, true, false, 0, -0, 1.5e-3, 1E+2, -12.0] ',
    "escapes": b'["\\"\\\\\\/\\b\\f\\n\\r\\t", "\\u00e9\\u20AC\\uD83D\\uDE00", "a\\u0000b"]',
    "utf8": '["caf\u00e9", "\u6771\u4eac", "\U0001F600", "\u2028"]'.encode(),
    "keys_dup": b'{"a":1,"a":2,"\\u0061":3,"b":{"a":[]}}',
    "nested": b'{"a":{"b":{"c":[[[{"d":null}]]]}}}',
    "numbers": b'[9223372036854775807,-9223372036854775808,9223372036854775808,'
               b'1e308,1e309,4.9e-324,2.2250738585072011e-308,123456789012345678901234567890]',
    "long_string": b'"' + b"abcdefghijklmnopqrstuvwxyz" * 4 + b'\\n' + b"0123456789" * 3 + b'"',
    "bad_surrogate": b'["\\uD800x"]',
    "bad_utf8": b'["\xed\xa0\x80", "\xc0\xaf", "\xf4\x90\x80\x80"]',
    "bad_trailing": b'[1,2] 3',
    "bad_number": b'[01, 1., -, .5, 1e]',
    "bad_control": b'["a\tb"]',
    "unclosed": b'{"a":[1,2',
    # where jansson differs from RFC 8259 (check_against_jansson): a NUL after a number or
    # literal, a key with \u0000, an integer beyond long long
    "jansson_nul_end": b"true\x00 \n",
    "jansson_nul_in_array": b" [null, true, false, 0\x00, -0, 1.5e-3, 1E+2, -12.0] ",
    "jansson_nul_key": b'{"a\\u0000b":1,"a":2}',
    "jansson_big_int": b'{"n":[1,-9223372036854775809]}',
}
for name, doc in json_read.items():
    write("json_read", name, b"\x00" + doc)
write("json_read", "depth_2", b"\x02" + json_read["nested"])
write("json_read", "tokens_6", b"\x30" + json_read["object"])
write("json_read", "huge_number", b"\x00" + b"0." + b"0" * 400 + b"1" + b"9" * 800 + b"e-10")

# ---- fuzz_h2: frames sent after the client preface and an empty SETTINGS frame ---------
# A frame is 9 bytes of header (RFC 9113 §4.1: length 24, type, flags, stream id 31) and its
# payload; header blocks are HPACK (RFC 7541) literals without indexing unless said.
def frame(ftype, flags, sid, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(">I", sid) + payload


DATA, HEADERS, PRIORITY, RST, SETTINGS, PING, GOAWAY, WU, CONT = 0, 1, 2, 3, 4, 6, 7, 8, 9
END_STREAM, END_HEADERS, PADDED, PRIO = 0x1, 0x4, 0x8, 0x20


def lit(name, value):  # §6.2.2 literal header field without indexing, new name
    return b"\x00" + bytes([len(name)]) + name + bytes([len(value)]) + value


def req(method=b"GET", path=b"/", extra=()):
    return b"".join([lit(b":method", method), lit(b":path", path), lit(b":scheme", b"http"),
                     lit(b":authority", b"a")] + [lit(n, v) for n, v in extra])


GET = req()
PRODUCE = req(path=b"/produce")
h2 = {
    "get": frame(HEADERS, END_STREAM | END_HEADERS, 1, GET),
    "head": frame(HEADERS, END_STREAM | END_HEADERS, 1, req(b"HEAD")),
    "continuation": frame(HEADERS, 0, 1, GET[:20]) + frame(CONT, END_HEADERS, 1, GET[20:]),
    "echo_cl": frame(HEADERS, END_HEADERS, 1, req(b"POST", b"/echo", [(b"content-length", b"5")]))
               + frame(DATA, END_STREAM, 1, b"hello"),
    "echo_nocl": frame(HEADERS, END_HEADERS, 1, req(b"POST", b"/echo"))
                 + frame(DATA, 0, 1, b"x" * 3000) + frame(DATA, END_STREAM, 1, b"y" * 100),
    "stream_body": frame(HEADERS, END_HEADERS, 1, req(b"POST", b"/stream"))
                   + frame(DATA, 0, 1, b"z" * 8000) + frame(DATA, END_STREAM, 1),
    "goaway": frame(HEADERS, END_STREAM | END_HEADERS, 1, GET)
              + frame(GOAWAY, 0, 0, struct.pack(">II", 1, 0)),
    "many": b"".join(frame(HEADERS, END_STREAM | END_HEADERS, s, GET) for s in range(1, 41, 2)),
    "ping_settings": frame(PING, 0, 0, b"12345678")
                     + frame(SETTINGS, 0, 0, struct.pack(">HI", 4, 0))
                     + frame(HEADERS, END_STREAM | END_HEADERS, 1, PRODUCE),
    "priority_wu": frame(PRIORITY, 0, 1, struct.pack(">IB", 0, 15))
                   + frame(WU, 0, 0, struct.pack(">I", 100))
                   + frame(HEADERS, END_STREAM | END_HEADERS, 3, GET),
    "produce": frame(HEADERS, END_STREAM | END_HEADERS, 1, PRODUCE)
               + frame(WU, 0, 0, struct.pack(">I", 1 << 20)),
    "rst": frame(HEADERS, END_STREAM | END_HEADERS, 1, PRODUCE)
           + frame(RST, 0, 1, struct.pack(">I", 8)),
    # static-table indexes (§2.3.1: 2 GET, 4 /, 6 http), :authority with incremental
    # indexing (dynamic table entry 62), then the same request again from the dynamic table;
    # a dynamic table size update first (§6.3)
    "hpack_indexed": frame(HEADERS, END_STREAM | END_HEADERS, 1,
                           b"\x3f\xe1\x1f" + b"\x82\x84\x86\x41\x01a")
                     + frame(HEADERS, END_STREAM | END_HEADERS, 3, b"\x82\x84\x86\xbe"),
    # Huffman-coded value (RFC 7541 C.4.1: "www.example.com")
    "hpack_huffman": frame(HEADERS, END_STREAM | END_HEADERS, 1,
                           b"\x82\x84\x86\x01\x8c\xf1\xe3\xc2\xe5\xf2\x3a\x6b\xa0\xab\x90\xf4\xff"),
    # padded HEADERS with a priority block, padded DATA (§6.1, §6.2)
    "padded": frame(HEADERS, END_HEADERS | PADDED | PRIO, 1,
                    b"\x03" + struct.pack(">IB", 0, 16) + req(b"POST", b"/echo") + b"\0" * 3)
              + frame(DATA, END_STREAM | PADDED, 1, b"\x04abc" + b"\0" * 4),
    # request trailers: HEADERS, DATA, HEADERS with END_STREAM (§8.1)
    "trailers": frame(HEADERS, END_HEADERS, 1, req(b"POST", b"/echo"))
                + frame(DATA, 0, 1, b"abc")
                + frame(HEADERS, END_STREAM | END_HEADERS, 1, lit(b"x-sum", b"294")),
    # malformed requests (§8.2.1, §8.3.1): an uppercase name, a connection-specific field, a
    # pseudo-header after a regular one, :path missing; each must reset its stream only
    "bad_fields": frame(HEADERS, END_STREAM | END_HEADERS, 1, GET + lit(b"X-Up", b"1"))
                  + frame(HEADERS, END_STREAM | END_HEADERS, 3, GET + lit(b"connection", b"x"))
                  + frame(HEADERS, END_STREAM | END_HEADERS, 5,
                          lit(b"x-a", b"1") + GET)
                  + frame(HEADERS, END_STREAM | END_HEADERS, 7,
                          lit(b":method", b"GET") + lit(b":scheme", b"http"))
                  + frame(HEADERS, END_STREAM | END_HEADERS, 9, GET),
    # flow control: SETTINGS_INITIAL_WINDOW_SIZE 0 then a producer, the window opened
    # by a stream WINDOW_UPDATE, then one that overflows it (§6.9.1: FLOW_CONTROL_ERROR)
    "window": frame(SETTINGS, 0, 0, struct.pack(">HI", 4, 0))
              + frame(HEADERS, END_STREAM | END_HEADERS, 1, PRODUCE)
              + frame(WU, 0, 1, struct.pack(">I", 8192))
              + frame(WU, 0, 1, struct.pack(">I", 0x7fffffff)),
    # protocol errors that end the connection: DATA on stream 0, a SETTINGS ack with a
    # payload, a frame on an even (server) stream id
    "conn_errors": frame(DATA, 0, 0, b"x") + frame(SETTINGS, 1, 0, b"\0" * 6)
                   + frame(HEADERS, END_STREAM | END_HEADERS, 2, GET),
    # rapid reset: HEADERS then RST_STREAM(CANCEL), over and over
    "rapid_reset": b"".join(frame(HEADERS, END_STREAM | END_HEADERS, s, PRODUCE)
                            + frame(RST, 0, s, struct.pack(">I", 8)) for s in range(1, 120, 2)),
}
for name, data in h2.items():
    write("h2", name, data)
