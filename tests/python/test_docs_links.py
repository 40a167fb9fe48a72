"""Every relative link in README.md and docs/*.md (and bench/*.md, which they link to and which
link back) resolves: the file exists inside the repository, and an anchor names a heading of the
target as GitHub renders it. No server needed."""

import pathlib
import re
import unicodedata
import urllib.parse

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
DOCUMENTS = [
    ROOT / "README.md",
    *sorted((ROOT / "docs").glob("*.md")),
    *sorted((ROOT / "bench").glob("*.md")),
]

FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
ATX_HEADING = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
SETEXT_UNDERLINE = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
CODE_SPAN = re.compile(r"(`+)(.+?)\1")
# [text](target) and ![alt](target), with an optional title; the target may be <bracketed>.
INLINE_LINK = re.compile(
    r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]"  # the text, which may hold one level of brackets
    r"\(\s*(<[^>]*>|[^\s()]+)"  # the target
    r"(?:\s+(?:\"[^\"]*\"|'[^']*'))?\s*\)"  # an optional title
)
REFERENCE_DEFINITION = re.compile(r"^ {0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)", re.MULTILINE)
HTML_ANCHOR = re.compile(r"<a\s[^>]*(?:name|id)=\"([^\"]+)\"", re.IGNORECASE)
SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
LINE_ANCHOR = re.compile(r"^L\d+(?:-L\d+)?$")


def prose_lines(text):
    """The lines of a markdown document outside fenced code blocks, as (number, line)."""
    fence = None
    for number, line in enumerate(text.splitlines(), 1):
        opening = FENCE.match(line)
        if fence is None and opening:
            fence = opening.group(1)
        elif fence is not None:
            if line.strip().startswith(fence[0] * len(fence)) and not line.strip().strip(fence[0]):
                fence = None
        else:
            yield number, line


def heading_text(markdown):
    """A heading's text as rendered: code spans keep their content, links their text, and
    emphasis markers and HTML tags go."""
    text = CODE_SPAN.sub(lambda m: m.group(2).strip(), markdown)
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"<[^>]+>", "", text)
    text = re.sub(r"(\*+|(?<!\w)_+|_+(?!\w))", "", text)
    return text.strip()


def slug(text):
    """GitHub's heading anchor: lowercase; drop every character but letters, digits, spaces,
    hyphens and underscores; each space becomes a hyphen."""
    kept = (
        c
        for c in text.lower()
        if c.isalnum() or c in " -_" or unicodedata.category(c).startswith("M")
    )
    return "".join(kept).replace(" ", "-")


def anchors(path):
    """Every anchor GitHub gives the markdown file: heading slugs, a repeated slug getting
    -1, -2, … in order, and explicit <a name|id="…"> anchors."""
    found, seen = set(), {}
    previous = ""
    for _, line in prose_lines(path.read_text(encoding="utf-8")):
        heading = None
        atx = ATX_HEADING.match(line)
        if atx:
            heading = atx.group(2) or ""
        elif SETEXT_UNDERLINE.match(line) and previous.strip():
            if not previous.lstrip().startswith(("|", "-", "*", "#")):
                heading = previous.strip()
        if heading is not None:
            base = slug(heading_text(heading))
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")
        found.update(HTML_ANCHOR.findall(line))
        previous = line
    return found


def links(path):
    """Every link target in the markdown file outside code, as (line number, target). Read over
    the whole text, not line by line: the docs are hard-wrapped, so a link's text (or a
    reference definition's target) may continue on the next line."""
    text = path.read_text(encoding="utf-8")
    prose = dict(prose_lines(text))
    # Code spans are not links: blank their content but keep the backticks, so that a span in
    # the text of a link, as in [`openapi.json`](openapi.json), still leaves the link.
    masked = "\n".join(
        CODE_SPAN.sub(lambda m: "`" + "x" * len(m.group(2)) + "`", prose.get(number, ""))
        for number in range(1, len(text.splitlines()) + 1)
    )
    line_of = lambda offset: masked.count("\n", 0, offset) + 1  # noqa: E731
    for match in INLINE_LINK.finditer(masked):
        yield line_of(match.start()), match.group(1).strip("<>")
    for match in REFERENCE_DEFINITION.finditer(masked):
        yield line_of(match.start()), match.group(1).strip("<>")


def broken_links(path, root=ROOT):
    """What is wrong with each relative link of `path`, one message per broken link."""
    problems, real_root = [], root.resolve()
    for number, target in links(path):
        if SCHEME.match(target) or target.startswith("//"):
            continue  # http(s), mailto and other absolute URLs are not checked here
        where = f"{path.relative_to(root)}:{number}: {target}"
        file_part, _, anchor = target.partition("#")
        file_part = urllib.parse.unquote(file_part)
        resolved = (path.parent / file_part).resolve() if file_part else path.resolve()
        if real_root not in resolved.parents and resolved != real_root:
            problems.append(f"{where}: leaves the repository")
            continue
        if not resolved.exists():
            problems.append(f"{where}: no such file")
            continue
        if not anchor:
            continue
        anchor = urllib.parse.unquote(anchor)
        if resolved.suffix.lower() != ".md":
            if not (resolved.is_file() and LINE_ANCHOR.match(anchor)):
                problems.append(f"{where}: an anchor into a file that is not markdown")
        elif anchor not in anchors(resolved):
            target_file = resolved.relative_to(real_root)
            problems.append(f"{where}: no heading with anchor #{anchor} in {target_file}")
    return problems


def test_there_are_documents_to_check():
    assert (ROOT / "README.md") in DOCUMENTS
    assert len(DOCUMENTS) > 1, "docs/*.md"


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(path):
    problems = broken_links(path)
    assert not problems, "broken links:\n" + "\n".join(problems)


@pytest.mark.parametrize(
    "heading, anchor",
    [
        ("`POST /oauth2/token`", "post-oauth2token"),
        ("`GET /.well-known/jwks.json`", "get-well-knownjwksjson"),
        ("Ending a user's session", "ending-a-users-session"),
        (
            "Key-bound clients and tokens: `private_key_jwt` and DPoP",
            "key-bound-clients-and-tokens-private_key_jwt-and-dpop",
        ),
        ("The authorizer, its cache, and per-request proofs", "the-authorizer-its-cache-and-per-request-proofs"),
        ("**Bold** and [a link](x.md)", "bold-and-a-link"),
        ("Ünïcode héading", "ünïcode-héading"),
        ("Two  spaces", "two--spaces"),
    ],
)
def test_slugs_follow_githubs_rules(heading, anchor):
    assert slug(heading_text(heading)) == anchor


def test_the_checker_reports_each_kind_of_broken_link(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "source.rs").write_text("fn main() {}\n")
    other = "# Other page\n\n## Part\n\n## Part\n\nText\n---\n"
    (tmp_path / "docs" / "other.md").write_text(other)
    page = tmp_path / "docs" / "page.md"
    page.write_text(
        "# Page\n\n"
        "[fine](other.md) [fine](other.md#part) [fine](other.md#part-1) [fine](other.md#text)\n"
        "[fine](#page) [fine](../source.rs) [fine](../source.rs#L1) [fine](https://example.com/x#y)\n"
        "[fine](mailto:someone@example.com) `[not a link](nowhere.md)`\n"
        "```\n[not a link](nowhere.md)\n```\n"
        "[gone](missing.md)\n"
        "[bad anchor](other.md#nope)\n"
        "[bad own anchor](#nope)\n"
        "[anchor into code](../source.rs#main)\n"
        "[outside](../../elsewhere.md)\n"
        "[ref]: missing-too.md\n"
        "[wrapped\nacross lines](wrapped-missing.md)\n"
        "[ref2]:\n  next-line-missing.md\n"
    )
    problems = broken_links(page, root=tmp_path)
    assert [p.split(": ")[1] for p in problems] == [
        "missing.md",
        "other.md#nope",
        "#nope",
        "../source.rs#main",
        "../../elsewhere.md",
        "wrapped-missing.md",
        "missing-too.md",
        "next-line-missing.md",
    ], problems
