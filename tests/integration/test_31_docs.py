"""31. The user's guide matches the code (issue 12): README.md's flags table lists exactly the
flags `zerohttpd --help` prints, and every relative link in README.md and docs/*.md resolves:
the file exists, a `#heading` anchor names a heading of that file, and a line anchor into a
source file (`include/zerohttp.h#L123`) lands on a line that names the link's text (the
declaration or section comment it points at), so the links follow the header as it moves.
No server is started except `zerohttpd --help`, which exits at once.
"""
import glob
import os
import re
import subprocess
import unittest

from harness import REPO, server_bin

LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)")


def slug(heading):
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    h = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return h.replace(" ", "-")


def prose_lines(path):
    """(number, line) outside fenced code blocks."""
    fence = False
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if line.startswith("```"):
                fence = not fence
                continue
            if not fence:
                yield n, line


def headings(path):
    return {slug(line.lstrip("#")) for _, line in prose_lines(path) if line.startswith("#")}


def names_text(text, line):
    """The line names the link text, or the struct behind a `zh_x_t` typedef name."""
    t = text.replace("`", "")
    return t in line or (t.endswith("_t") and ("typedef struct %s " % t[:-2]) in line)


def link_errors(md):
    errors = []
    base = os.path.dirname(md)
    for n, line in prose_lines(md):
        for m in LINK.finditer(line):
            text, url = m.group(1), m.group(2)
            if re.match(r"^[a-z]+:", url):
                continue                     # http:, https:, mailto:: not checked offline
            path, _, frag = url.partition("#")
            target = os.path.normpath(os.path.join(base, path)) if path else md
            where = "%s:%d: %s" % (os.path.relpath(md, REPO), n, url)
            if not os.path.exists(target):
                errors.append(where + ": no such file")
            elif re.fullmatch(r"L\d+", frag):
                with open(target, encoding="utf-8") as f:
                    lines = f.read().split("\n")
                k = int(frag[1:])
                if k > len(lines) or not names_text(text, lines[k - 1]):
                    errors.append(where + ": line %d does not name %r" % (k, text))
            elif frag and target.endswith(".md") and frag not in headings(target):
                errors.append(where + ": no heading #" + frag)
    return errors


class Docs(unittest.TestCase):
    def test_relative_links_resolve(self):
        files = [os.path.join(REPO, "README.md")] + sorted(glob.glob(os.path.join(REPO, "docs", "*.md")))
        errors = []
        for md in files:
            errors += link_errors(md)
        self.assertEqual(errors, [])
        # the header links are there to be checked (a README without them passes nothing)
        with open(files[0], encoding="utf-8") as f:
            self.assertGreater(len(re.findall(r"include/zerohttp\.h#L\d+", f.read())), 40)

    def test_flags_table_matches_help(self):
        out = subprocess.run([server_bin(), "--help"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, timeout=10, check=True).stdout.decode()
        helped = set(re.findall(r"^  (--[a-z0-9-]+)", out, re.M))
        self.assertIn("--demo", helped)
        with open(os.path.join(REPO, "README.md"), encoding="utf-8") as f:
            readme = f.read()
        self.assertIn("### Flags", readme)
        self.assertIn("### Log lines", readme)
        table = readme[readme.index("### Flags"):readme.index("### Log lines")]
        listed = set(re.findall(r"^\| `(--[a-z0-9-]+)", table, re.M))
        self.assertEqual(sorted(listed - helped), [], "in README's table, not in --help")
        self.assertEqual(sorted(helped - listed), [], "in --help, not in README's table")
        # and in the same order, so a reader can compare them side by side
        self.assertEqual(re.findall(r"^\| `(--[a-z0-9-]+)", table, re.M),
                         re.findall(r"^  (--[a-z0-9-]+)", out, re.M))


if __name__ == "__main__":
    unittest.main()
