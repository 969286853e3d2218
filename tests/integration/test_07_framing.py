"""7. Request smuggling and framing errors: exact status, then the server closes."""
from harness import HELLO, ServerTestCase, request

H = b"GET /plaintext HTTP/1.1\r\nHost: x\r\n"

CASES = {
    # name: (raw request, expected status)
    "cl_and_te": (b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    "te_and_cl": (b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                  b"Content-Length: 5\r\n\r\n0\r\n\r\n", 400),
    "two_differing_content_lengths": (b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                                      b"Content-Length: 6\r\n\r\nhello!", 400),
    "content_length_list_differing": (b"POST /echo HTTP/1.1\r\nHost: x\r\n"
                                      b"Content-Length: 5, 6\r\n\r\nhello!", 400),
    "content_length_plus": (b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\n"
                            b"hello", 400),
    "content_length_minus": (b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n"
                             b"hello", 400),
    "content_length_hex": (b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 0x5\r\n\r\n"
                           b"hello", 400),
    "content_length_empty": (b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: \r\n\r\n", 400),
    "te_gzip": (b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
    "missing_host_http11": (b"GET /plaintext HTTP/1.1\r\n\r\n", 400),
    "two_host_headers": (b"GET /plaintext HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    "obs_fold": (H + b"X-Folded: a\r\n  continued\r\n\r\n", 400),
    "obs_fold_tab": (H + b"X-Folded: a\r\n\tcontinued\r\n\r\n", 400),
    "space_before_colon": (b"GET /plaintext HTTP/1.1\r\nHost: x\r\nX-Test : v\r\n\r\n", 400),
    "space_before_colon_content_length": (b"POST /echo HTTP/1.1\r\nHost: x\r\n"
                                          b"Content-Length : 5\r\n\r\nhello", 400),
    "bare_lf_everywhere": (b"GET /plaintext HTTP/1.1\nHost: x\n\n", 400),
    "bare_lf_in_header": (b"GET /plaintext HTTP/1.1\r\nHost: x\nX-A: b\r\n\r\n", 400),
    "nul_in_header_value": (H + b"X-Nul: a\x00b\r\n\r\n", 400),
    "cr_in_header_value": (H + b"X-Cr: a\rb\r\n\r\n", 400),
    "unknown_method": (b"FOO /plaintext HTTP/1.1\r\nHost: x\r\n\r\n", 501),
    "http_2_0": (b"GET /plaintext HTTP/2.0\r\nHost: x\r\n\r\n", 505),
    "http_garbage_version": (b"GET /plaintext HTTP/1.x\r\nHost: x\r\n\r\n", 400),
    # RFC 9112 2.2: whitespace between the start-line and the first field: reject
    "whitespace_before_first_field": (b"GET /plaintext HTTP/1.1\r\n Host: x\r\n\r\n", 400),
    # RFC 9112 3.2: an invalid Host value is a 400
    "host_with_space": (b"GET /plaintext HTTP/1.1\r\nHost: a b\r\n\r\n", 400),
    "host_with_userinfo": (b"GET /plaintext HTTP/1.1\r\nHost: u@x\r\n\r\n", 400),
    "host_bad_port": (b"GET /plaintext HTTP/1.1\r\nHost: x:8o\r\n\r\n", 400),
    # RFC 9112 3.2.3/3.2.4: authority-form only for CONNECT, asterisk-form only for OPTIONS
    "authority_form_get": (b"GET x:80 HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    "asterisk_form_get": (b"GET * HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    # RFC 9110 8.6: a list of identical values MAY be rejected; differing ones above
    "content_length_list_identical": (b"POST /echo HTTP/1.1\r\nHost: x\r\n"
                                      b"Content-Length: 5, 5\r\n\r\nhello", 400),
    # RFC 9112 6.1: chunked not last: the length cannot be determined: 400 and close
    "te_chunked_not_last": (b"POST /echo HTTP/1.1\r\nHost: x\r\n"
                            b"Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n", 400),
    # RFC 9112 6.1: Transfer-Encoding in an HTTP/1.0 request: faulty framing, close
    "te_in_http_1_0": (b"POST /echo HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"
                       b"0\r\n\r\n", 400),
    # RFC 9110 10.1.1: an expectation other than 100-continue
    "expect_other": (b"GET /plaintext HTTP/1.1\r\nHost: x\r\nExpect: 200-ok\r\n\r\n", 417),
    "http_3_0": (b"GET /plaintext HTTP/3.0\r\nHost: x\r\n\r\n", 505),
    "http_1_10": (b"GET /plaintext HTTP/1.10\r\nHost: x\r\n\r\n", 400),
    "http_01_1": (b"GET /plaintext HTTP/01.1\r\nHost: x\r\n\r\n", 400),
    # HTTP/1.2 is processed as HTTP/1.1 (RFC 9112 2.3), so it needs a Host like 1.1 does
    "http_1_2_without_host": (b"GET /plaintext HTTP/1.2\r\n\r\n", 400),
    # RFC 9112 7.1: BWS after a chunk size only before a ';' chunk extension
    "chunk_size_trailing_space": (b"POST /echo HTTP/1.1\r\nHost: x\r\n"
                                  b"Transfer-Encoding: chunked\r\n\r\n"
                                  b"3 \r\nabc\r\n0\r\n\r\n", 400),
    "chunk_size_trailing_tab": (b"POST /echo HTTP/1.1\r\nHost: x\r\n"
                                b"Transfer-Encoding: chunked\r\n\r\n"
                                b"3\t\r\nabc\r\n0\r\n\r\n", 400),
    "last_chunk_size_trailing_space": (b"POST /echo HTTP/1.1\r\nHost: x\r\n"
                                       b"Transfer-Encoding: chunked\r\n\r\n"
                                       b"3\r\nabc\r\n0 \r\n\r\n", 400),
    "trailer_space_before_colon": (b"POST /echo HTTP/1.1\r\nHost: x\r\n"
                                   b"Transfer-Encoding: chunked\r\n\r\n"
                                   b"3\r\nabc\r\n0\r\nX-T : v\r\n\r\n", 400),
    "trailer_obs_fold": (b"POST /echo HTTP/1.1\r\nHost: x\r\n"
                         b"Transfer-Encoding: chunked\r\n\r\n"
                         b"3\r\nabc\r\n0\r\nX-T: v\r\n w\r\n\r\n", 400),
    "bad_chunk_size": (b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                       b"zz\r\nhello\r\n0\r\n\r\n", 400),
}


class Framing(ServerTestCase):
    def run_case(self, raw, status):
        c = self.conn()
        c.send(raw)
        c.settimeout(2.0)
        r = c.read_response()
        self.assertEqual(r.status, status, "for %r got %r" % (raw[:120], r))
        # RFC 9110 6.6.1: an origin server with a clock sends Date in 4xx (and here 5xx) too
        self.assertIsNotNone(r.header("Date"), repr(r))
        self.assertTrue(c.closed_by_peer(2.0),
                        "server did not close the connection within 2s after %d" % status)
        # and the server is still fine
        c2 = self.conn()
        c2.send(request("GET", "/plaintext"))
        self.assertResponse(c2.read_response(), 200, HELLO)

    def test_smuggled_request_not_served(self):
        # CL+TE: the body "0\r\n\r\nGET /json..." must never be treated as a second request
        c = self.conn()
        c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 48\r\n"
               b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
               b"GET /json HTTP/1.1\r\nHost: x\r\n\r\n")
        r = c.read_response()
        self.assertEqual(r.status, 400, repr(r))
        self.assertTrue(c.closed_by_peer(2.0), "connection not closed (or a second response)")


    def test_higher_minor_version_processed_as_1_1(self):
        # RFC 9112 2.3: HTTP/1.2 .. HTTP/1.9 are processed as 1.1 and answered with
        # HTTP/1.1; the connection stays open (1.1's default), so a second request follows
        for minor in (b"2", b"9"):
            c = self.conn()
            c.send(b"GET /plaintext HTTP/1." + minor + b"\r\nHost: x\r\n\r\n")
            r = c.read_response()
            self.assertEqual(r.version, "HTTP/1.1", repr(r))
            self.assertResponse(r, 200, HELLO)
            c.send(b"GET /plaintext HTTP/1." + minor + b"\r\nHost: x\r\n\r\n")
            self.assertResponse(c.read_response(), 200, HELLO)

    def test_empty_lines_before_the_request_line_are_ignored(self):
        # RFC 9112 2.2: a server SHOULD ignore at least one empty line before a request-line
        c = self.conn()
        c.send(b"\r\nGET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertResponse(c.read_response(), 200, HELLO)
        c.send(b"\r\n\r\nGET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertResponse(c.read_response(), 200, HELLO)

    def test_bws_before_chunk_extension_accepted(self):
        # RFC 9112 7.1.1: chunk-ext = *( BWS ";" BWS name [ BWS "=" BWS value ] )
        c = self.conn()
        c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"3 ;a=b\r\nabc\r\n2\t; x\r\nde\r\n0 ;end\r\nX-T: v\r\n\r\n")
        self.assertResponse(c.read_response(), 200, b"abcde")


def _make(name, raw, status):
    def t(self):
        self.run_case(raw, status)
    t.__name__ = "test_" + name
    t.__doc__ = "%s -> %d" % (name, status)
    return t


for _name, (_raw, _status) in CASES.items():
    setattr(Framing, "test_" + _name, _make(_name, _raw, _status))
