"""Address forms the `email` detector did not find, so a call holding one reached a model unlabelled, for a purpose its
zone forbids (a hunt, 2026-12-04): an address a file's name goes on after with underscores (`alice@example.com_2024.csv`,
`report_alice@example.com_v2.pdf`), a quoted local part (`"john doe"@example.com`), an IP address for a domain
(`user@[192.168.0.1]`, `user@[IPv6:2001:db8::1]`), and `@` or `.` escaped twice for a URL (`alice%2540example.com`).
A domain that is no top-level one before the underscores is still a word joined on (`x@self.weight_t`)."""

from __future__ import annotations

import pathlib
import subprocess
import sys
from collections.abc import Iterable, Iterator
from typing import Any

import openai
import orjson
import pytest

import proxy.detectors as detectors
from proxy.config import DetectorSpec
from proxy.detectors import Detectors
from tests.configs import EMAIL_ZONE_STORED
from tests.harness import proxy_error
from tests.servers.vllm_like import SERVED
from tests.test_scan_cost import Counted, python_lines

EMAIL = Detectors([DetectorSpec("email")])

CONFIG = EMAIL_ZONE_STORED

FOUND = [
    ("attached alice@example.com_2024.csv", "attached [pii:email]_2024.csv"),
    ("see report_alice@example.com_v2.pdf", "see [pii:email]_v2.pdf"),
    ("bob@mail.example.co.uk__1.txt", "[pii:email]__1.txt"),
    ("alice@example.com_2024", "[pii:email]_2024"),  # digits, or words and an extension (`_FILE_NAME_AFTER`)
    ("alice@example.com_backup.csv.", "[pii:email]_backup.csv."),
    ("alice@example.com_2024_q1-final.tar.gz", "[pii:email]_2024_q1-final.tar.gz"),
    ("(report_alice@example.com_v2.PDF)", "([pii:email]_v2.PDF)"),
    ('write to "john doe"@example.com today', "write to [pii:email] today"),
    ('write to "john.doe"@example.com.', "write to [pii:email]."),
    ('"a\\"b"@example.com', "[pii:email]"),  # a quoted pair
    ('{"to": "\\"john doe\\"@example.com"}', '{"to": "[pii:email]"}'),  # in JSON in a string (review)
    ("mail user@[192.168.0.1] now", "mail [pii:email] now"),
    ("mail user@[IPv6:2001:db8::1]", "mail [pii:email]"),
    ("https://x.test/?to=alice%2540example.com&a=1", "https://x.test/?to=[pii:email]&a=1"),
    ("alice%252540example%252Ecom", "[pii:email]"),  # three times
    ("alice%2540example.com_2024.csv", "[pii:email]_2024.csv"),
    # glued to `=`, `(` or `[` as code's operands are, an address with a top-level domain mail is sent to is one still
    # (`_code`): a delegated one, or a private mail name
    ("?email=bob@corp.local", "?email=[pii:email]"),
    ("mailto=alice@example.com", "mailto=[pii:email]"),
    ("to=bob@foo.xyz", "to=[pii:email]"),
    ("(alice@example.com)", "([pii:email])"),
    ("[bob@example.org]", "[[pii:email]]"),
    ("x=bob@corp.internal;", "x=[pii:email];"),
    ("f=alice@example.com_2024.csv", "f=[pii:email]_2024.csv"),  # a file's extension Python knows
    ("<(foo) dinsdale@example.com(bar)>", "<(foo) [pii:email](bar)>"),  # RFC 5322's comment after one: no call
    ("Foo x@example.com[],", "Foo [pii:email][],"),  # (Python's email tests)
    # glued so, a file's name with an extension files are named with that Python 3.11's `mimetypes` table lacks, and a
    # private mail name RFC 6762 lists, were code (2026-12-04, review)
    ("f=alice@example.com_export.log", "f=[pii:email]_export.log"),
    ("path=alice@example.com_notes.md", "path=[pii:email]_notes.md"),
    ("(alice@example.com_cv.docx)", "([pii:email]_cv.docx)"),
    ("cfg=alice@example.com_prod.yaml", "cfg=[pii:email]_prod.yaml"),
    ("a,alice@example.com_2024.xlsx", "a,[pii:email]_2024.xlsx"),
    ("img=alice@example.com_avatar.webp", "img=[pii:email]_avatar.webp"),
    ("user=bob@mail.intranet", "user=[pii:email]"),
    ("user=bob@corp.private", "user=[pii:email]"),
    # glued so and followed by `(` or `[`, a top-level domain no Python name is spelled as: a comment or an index
    ("email=alice@example.com(work)", "email=[pii:email](work)"),
    ("(alice@example.com(home))", "([pii:email](home))"),  # RFC 5322's comment
    ("cc=alice@example.com[0]", "cc=[pii:email][0]"),
    ("(alice@example.de(home))", "([pii:email](home))"),
    # a file's name after one, words then digits, a copy's number or an extension longer than 5 characters: none were
    # found (2026-12-05, helper email)
    ("alice@example.com_v2", "[pii:email]_v2"),
    ("alice@example.com_backup_2024", "[pii:email]_backup_2024"),
    ("alice@example.com_2024.csv(1)", "[pii:email]_2024.csv(1)"),
    ("alice@example.com_export.parquet", "[pii:email]_export.parquet"),
    ("f=alice@example.com_export.parquet", "f=[pii:email]_export.parquet"),
    # an A-label top-level domain masked whole, not up to its `xn` (2026-12-05, helper email)
    ("jane@example.xn--p1ai", "[pii:email]"),
    ("email=jane@example.xn--p1ai.", "email=[pii:email]."),
    ("to=a@b.xn--80asehdb", "to=[pii:email]"),
    # and then a file's name: none was found (2026-12-05, helper emails)
    ("jane@example.xn--p1ai_2024.csv", "[pii:email]_2024.csv"),
    ("see jane@EXAMPLE.XN--P1AI_backup.txt", "see [pii:email]_backup.txt"),
    ("a@b.xn--80asehdb_v2", "[pii:email]_v2"),
    # glued to `=` after a name that holds an address, a made-up private top-level domain (`.acme`) or one that is
    # an attribute's name (`.data`): read as a matrix product until 2026-12-05 (helper email)
    ("user=bob@corp.acme", "user=[pii:email]"),
    ("?reply_to=bob@corp.acme&x=1", "?reply_to=[pii:email]&x=1"),
    ("EmailAddress=bob@corp.acme;", "EmailAddress=[pii:email];"),
    ("email=jane@corp.data", "email=[pii:email]"),
    # an IPv6 address in brackets without its `IPv6:` tag, and a quoted local part before an IP address: none were
    # found (2026-12-05, helper email)
    ("mail alice@[2001:db8::1] now", "mail [pii:email] now"),
    ('write "a b"@[1.2.3.4]', "write [pii:email]"),
    ('<"Fred Perfect"@[127.0.0.1]>', "<[pii:email]>"),  # (Python's email tests)
    # a top-level domain that is an attribute's name glued to `(`, `[` or `,` (prose, a Markdown link, a CSV row), one
    # that is a Python keyword (`in`, `is`: no attribute's name) or any before a Markdown footnote (`[^1]`), and a
    # camelCase name that holds one: none were found after b6560f0 (2026-12-05, helper revemail)
    ("(bob@firma.to)", "([pii:email])"),
    ("[bob@example.to](mailto:bob@example.to)", "[[pii:email]](mailto:[pii:email])"),
    ("alice,alice@shop.new,2024", "alice,[pii:email],2024"),
    ("mail bob@company.in(office)", "mail [pii:email](office)"),
    ("see bob@firma.is[1]", "see [pii:email][1]"),
    ("Contact bob@firma.at[^1] now", "Contact [pii:email][^1] now"),
    ("replyTo=bob@corp.acme", "replyTo=[pii:email]"),
    ("toAddress=bob@corp.acme", "toAddress=[pii:email]"),
    # a top-level domain that is a Python name's (`.at`, `.it`, `.no`) before `(` or `[` in prose, and one that is an
    # attribute's name, or a file's name without extension after one, glued to `=` with a domain named as mail's is:
    # read as code until 2026-12-05 (helper emails)
    ("write to alice@gmx.at(home)", "write to [pii:email](home)"),
    ("bob@firma.it[1]", "[pii:email][1]"),
    ("bob@uni.no(office)", "[pii:email](office)"),
    ("Contact: bob@tuwien.ac.at(office)", "Contact: [pii:email](office)"),
    ("x=bob@corp.data", "x=[pii:email]"),
    ("x=alice@example.com_v2", "x=[pii:email]_v2"),
    ("user=alice@example.com_v2", "user=[pii:email]_v2"),
]


@pytest.mark.parametrize(("text", "masked"), FOUND)
def test_the_address_is_found_and_masked_whole(text: str, masked: str) -> None:
    assert EMAIL.scan(text) == {"pii:email"}  # before: frozenset()
    assert EMAIL.mask(text) == masked


@pytest.mark.parametrize("text", ["- bob@uni.no(office)", "Write to:\n  * bob@firma.it[1]\n> alice@gmx.at(home)"])
def test_an_address_in_a_list_or_a_quote_before_a_bracket_is_found(text: str) -> None:
    # a list's bullet or a quote's mark first in a line is no operator (2026-12-05, helper emails)
    assert EMAIL.scan(text) == {"pii:email"}  # before: frozenset()
    assert "@" not in EMAIL.mask(text)


@pytest.mark.parametrize(
    "text",
    [
        "é alice@example.com_2024.csv",  # in a text that is not ASCII
        "schreib jörg@exämple.de_2024.csv",
        "schreib jörg@exämple.de_backup.txt",
        'é "john doe"@example.com',
        '"jörg müller"@example.de',  # a quoted local part in UTF-8 (RFC 6531)
        "é user@[192.168.0.1]",
        "é alice%2540example.com",
    ],
)
def test_the_address_is_found_in_a_text_that_is_not_ascii(text: str) -> None:
    assert EMAIL.scan(text) == {"pii:email"}


@pytest.mark.parametrize(
    "text",
    [
        "y = x@self.weight_t",  # Python's `@` before a name that is no top-level domain
        "y = A@sps.diags_array(d)",
        "é y = x@self.weight_t",
        "y = x@self.xn--p1ai_proj",  # an A-label a word joins on, no file's name (2026-12-05, helper emails)
        "é jane@example.xn--p1ai_foo",
        "x@[999.1.1.1]",  # no IP address
        "x@[1.2.3]",
        "x@[1.2.3.4.]",
        "x@[01.2.3.4]",
        "x@[IPv6:2001:db8::zz]",
        "x@[2001:db8::zz]",
        "x@[1:2:3:4:5:6:7:8:9]",
        "a@[1.2.3.4",
        '"" @example.com',
        '"john doe" @example.com',
        "50%25 off, 100%25 sure",  # an escaped `%` before anything else stays one
        "a%2541b.com",
        "see %2540 and %252E alone",
    ],
)
def test_look_alikes_are_no_address(text: str) -> None:
    assert EMAIL.scan(text) == frozenset()


# letters that are not ASCII in a quoted local part's domain or before an IP address in brackets: `"jörg"@exämple.de`
# was none, `jörg@[1.2.3.4]` masked from `rg` (2026-12-05, helper email)
WIDE_FOUND = [
    ('"jörg"@exämple.de', "[pii:email]"),
    ('schreib "jörg müller"@bücher.example.com.', "schreib [pii:email]."),
    ("jörg@[1.2.3.4]", "[pii:email]"),
    ("an müller.jörg@[IPv6:2001:db8::1]!", "an [pii:email]!"),
    ('"jörg"@[2001:db8::1]', "[pii:email]"),
    # an ASCII local part after a letter of a script written without spaces, as before a domain: since 8d919bb the
    # text before it was masked with it, up to 64 characters (2026-12-05, helper revemail)
    ("会議室でtanaka@[1.2.3.4]", "会議室で[pii:email]"),
    ("请发到alice@[2001:db8::1]。", "请发到[pii:email]。"),
]


@pytest.mark.parametrize(("text", "masked"), WIDE_FOUND)
def test_an_address_with_letters_that_are_not_ascii_is_found_and_masked_whole(text: str, masked: str) -> None:
    assert EMAIL.scan(text) == {"pii:email"}
    assert EMAIL.mask(text) == masked
    reply = "the model wrote this reply for you, which is long enough to be read at once: " * 3 + text + " thanks"
    start = reply.index(text)
    for cut in range(start, start + len(text) + 1):
        scanner = EMAIL.stream()
        scanner.feed(reply[:cut])
        scanner.feed(reply[cut:])
        scanner.end_text()
        assert scanner.found == {"pii:email"}, cut


# the gap between two strings in code, read as a quoted local part: its `"` closes one string and the `"` before `@`
# opens the next, a domain (`"@gmail.com"`), so code that lists or joins one was a `pii:email` (2026-12-04, review)
CODE_BETWEEN_STRINGS = [
    'domains = ["@gmail.com", "@yahoo.com"]',
    '["@gmail.com","@yahoo.com"]',
    '{"suffix": "@company.com"}',
    'print("Email: " + user + "@example.com")',
    'email = "user" + str(i) + "@example.com"',
    'to = "x"+user+"@example.com"',
    'Url("http", host="google.com", path="", fragment="@evil.com/")',  # (urllib3's tests)
]


@pytest.mark.parametrize("text", CODE_BETWEEN_STRINGS)
@pytest.mark.parametrize("before", ["", "é "])
def test_code_between_two_strings_is_no_quoted_local_part(text: str, before: str) -> None:
    assert EMAIL.scan(before + text) == frozenset()  # before: {"pii:email"}


# Ruby's instance variables converted (`.to_s`, `.to_i`: `to` is Tonga's domain) after a `+` or `-`: a local part
# ending in punctuation, joined on by underscores to a word, was an address (2026-12-04, review)
RUBY = ['puts "k: "+@k.to_s', 's = "Total: "+@total.to_s+" items"', "a = -@k.to_i", "sum+@x.to_f", "größe+@k.to_s"]


@pytest.mark.parametrize("text", RUBY)
@pytest.mark.parametrize("before", ["", "é "])
def test_a_local_part_ending_in_punctuation_joined_on_by_underscores_is_none(text: str, before: str) -> None:
    assert EMAIL.scan(before + text) == frozenset()  # before: {"pii:email"}


# Python's matrix products written without spaces, an attribute after a top-level domain (`.in` India's, `.io`, `.to`,
# `.ai`, `.co`): labelled since the file-name form was found (6f23474), so a call asking about such code was refused
# where a zone forbids its purpose; a file's name goes on with digits or an extension (2026-12-04, review)
MATRIX_PRODUCTS = [
    "p=x@self.in_proj_weight[i*e:(i+1)*e].T",  # (PyTorch's MultiheadAttention)
    "y = x@self.io_read(z)",
    "q@k.to_dense()",
    "w@np.ai_weights",
    "out=h@self.co_attn.weight",
    "y=x@self.in_proj_weight.T",
    "y=(x@self.in_proj_weight.t())",
    "s=x@self.to_q.weight.T",
    "h=x@self.me_w+self.b",
    "z=a@self.ai_proj_1",
    "alice@example.com_backup",  # a word with no extension: no file's name read so either
]

# the same with any top-level domain (`_code`): a domain directly followed by `(` or `[` (a call, an index), or a local
# part glued to an operator, `=`, `(`, `,` or `[` with no delegated top-level domain, or a file's name after one with
# no extension Python knows. Code assistants receive these all day (nanoGPT's attention, least squares, projections);
# every one but `out=(h@W.T).sum()` and those with no `.` after `@` was a `pii:email` (2026-12-04, helper emailcode2)
ML_CODE = [
    "att=(q@k.transpose(-2,-1))*(1.0/math.sqrt(k.size(-1)))",  # (nanoGPT's CausalSelfAttention)
    "attn=q@k.transpose(-2,-1)",
    "scores=Q@K.transpose(1,2)/math.sqrt(d_k)",
    "t=X@self.coef+b",
    "u=u+P@np.linalg.solve(A,b)",
    "V=omega@np.linalg.inv(S)",
    "y=x@self.in_proj.bias",
    "out=(h@W.T).sum()",
    "logits=x@self.wte.weight.T",
    "proj=(x@self.proj.weight.t())",
    "z=x@self.fc.weight.T+self.fc.bias",
    "emb=tok@self.embedding.weight",
    "loss=((X@self.theta-y)**2).mean()",
    "pred=sigmoid(X@self.weights)",
    "out=x@w.to(device)",
    "v=x@df.at[0]",
    "y=A@x.flatten()",
    "res=A@B.sum(axis=0)",
    "v=V@np.diag(s)@U.T",
    "proj=pts@cam.intrinsics.T",
    "h=F.gelu(x@self.w1.weight.T)@self.w2.weight.T",
    "mu=W@self.mean_vec",
    "Q=x@self.query.weight",
    "k=x@self.key.weight",
    "x=x@self.rot.matrix",
    "beta=np.linalg.inv(X.T@X)@X.T@y",
    "grad=X.T@(X@w-y)/n",
    "cov=Xc.T@Xc/(n-1)",
    "w=w-lr*X@grad.mean(0)",
    "f=lambda x:x@self.A.T",
    "e=[v@M.norm for v in vs]",
    "s=(a@b.conj()).real",
    "H=J@self.hess.inv",
    "x=np.clip(x@self.W.T,0,1)",
    "d=dict(k=q@self.keys.T)",
    "assert_allclose(A, L@D@L.conjugate().T, atol=atol)",  # (SciPy's tests)
    # a delegated top-level domain that is an attribute's name (`.data`, `.to`, `.dot`), glued, or spaced and then
    # called or indexed: addresses until 2026-12-05 (helper email)
    "y=x@self.weight.data",
    "w=x@self.w.data+b",
    "y = x@w.to(device)",
    "v = x@df.at[0]",
    "z = a@np.dot(b, c)",
    # glued to `=` after a name whose first word only is a mail's (`user_`, `to_`, `owner_`): addresses after b6560f0
    # (2026-12-05, helper revemail)
    "user_emb=u@self.proj.weight",
    "to_dev=x@self.proj.weight",
    "owner_logits=o@self.head.weight",
    "userEmb=u@self.W.data",
    # spaced, after an operator, `=`, `,` or a keyword, or with a domain named as Python's operands are (`df`, `self`):
    # code still once an address in prose before `(` or `[` was one (2026-12-05, helper emails)
    "return emb@model.to(device)",
    "out = emb@model.to(device)",
    "f(a, emb@model.to(dev))",
    "x@df.at[0]",
    "y=emb@self.proj.data",
    "y=h@weights.data",
    "z=ab@self.ai_proj_1",
    "z=ab@np.ai_proj_1",
]


@pytest.mark.parametrize("text", MATRIX_PRODUCTS + ML_CODE)
@pytest.mark.parametrize("before", ["", "é "])
def test_a_matrix_product_with_an_attribute_after_a_top_level_domain_is_none(text: str, before: str) -> None:
    assert EMAIL.scan(before + text) == frozenset()  # before: {"pii:email"}


@pytest.mark.parametrize("value", MATRIX_PRODUCTS + ML_CODE)
@pytest.mark.parametrize("before", ["", "é "])
def test_streamed_a_matrix_product_is_none_however_cut(value: str, before: str) -> None:
    text = "the model wrote this code for you, which is long enough to be read at once: " * 3 + before + value + "\n"
    assert EMAIL.scan_output(text) == frozenset()
    start = text.index(value)
    for cut in range(start, start + len(value) + 1):
        scanner = EMAIL.stream()
        scanner.feed(text[:cut])
        scanner.feed(text[cut:])
        scanner.end_text()
        assert scanner.found == set(), cut


@pytest.mark.parametrize(
    "text",
    [
        '"john.doe."@example.com',
        '"a b c"@example.com',
        '"x" then "a\\"b"@example.com',
        '"1 2"@example.com',
        '"a\\\\"@[192.0.2.1]',  # (a quoted pair, `\\`, its last: no escaped quote, 2026-12-05, helper revemail)
    ],
)
def test_a_quoted_local_part_is_still_found(text: str) -> None:
    assert EMAIL.scan(text) == {"pii:email"}


@pytest.mark.interpreted  # (lines of Python counted)
@pytest.mark.parametrize("text", ['"@' * 100_000, '"a b"@x' * 30_000, "a@[" * 60_000, "a@[1.2.3.4.5] " * 15_000])
def test_text_dense_with_what_starts_one_costs_no_python_per_one(text: str) -> None:
    lines = python_lines(lambda: (EMAIL.scan(text), EMAIL.findings(text)), detectors.__file__)
    assert lines < 2_000  # (one search of each form: `_odd_addresses`)


class CountedWhole(Counted):
    """`Counted`, its `fullmatch` counted too."""

    def fullmatch(self, string: bytes, pos: int = 0, endpos: int = sys.maxsize) -> Any:
        self.read += min(endpos, len(string)) - pos
        return self.pattern.fullmatch(string, pos, endpos)


@pytest.mark.interpreted  # (the module's patterns replaced)
@pytest.mark.parametrize(
    "unit",
    [
        'x"a\\"@[1.2.3.4]',
        '"a\\"@[1.2.3.4]',
        '\\"a\\"@[1.2.3.4]',
        '\\"a \\"@[1.2.3.4]',
        'a\\"@[1.2.3.4]',
        '"\\"\\"@[::1]',
    ],
)
def test_a_quoted_local_part_before_brackets_is_tried_from_one_quote(
    unit: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a quoted local part before an IP address (8d919bb) was looked for 256 bytes back at each `"@[`, from every `"`
    # there up to 60 characters on: a megabyte of `\"a \"@[1.2.3.4]` took 8 s, of `"a\"@[1.2.3.4]` 3 s (2026-12-05,
    # helper revemail)
    plain, escaped = CountedWhole(detectors._QUOTED_LOCAL), CountedWhole(detectors._QUOTED_LOCAL_ESCAPED)
    monkeypatch.setattr(detectors, "_QUOTED_LOCAL", plain)
    monkeypatch.setattr(detectors, "_QUOTED_LOCAL_ESCAPED", escaped)
    EMAIL.scan(unit * 2_000)
    assert plain.read + escaped.read < 2 * len(unit) * 2_000  # before: 256 or 512 a unit


# an A-label top-level domain (`xn--p1ai`, Russia's `рф`) glued so was code: its match ends at `xn` (2026-12-04, review)
A_LABELS = ["email=jane@example.xn--p1ai", "=jane@EXAMPLE.XN--P1AI", "(jane@пример.xn--p1ai)", "to=a@b.xn--80asehdb"]


@pytest.mark.parametrize("text", A_LABELS)
def test_an_address_with_an_a_label_top_level_domain_is_found(text: str) -> None:
    assert EMAIL.scan(text) == {"pii:email"}  # before: frozenset()
    assert EMAIL.scan_output("a reply long enough to be read at once, more or less: " * 3 + text) == {"pii:email"}


@pytest.mark.parametrize("text", A_LABELS)
@pytest.mark.parametrize("before", ["", "é "])
def test_an_a_label_top_level_domain_is_masked_whole(text: str, before: str) -> None:
    masked = EMAIL.mask(before + text + " ok")
    assert masked.endswith("[pii:email] ok") or masked.endswith("[pii:email]) ok")  # before: `[pii:email]--p1ai`
    assert "p1ai" not in masked.lower() and "80asehdb" not in masked


def test_reading_no_system_mime_types_file_at_import() -> None:
    # `mimetypes.MimeTypes()` at import called `mimetypes.init()`: it read the system's mime.types files, and the
    # extensions known differed by Python (2026-12-04, review)
    code = "import mimetypes, proxy.detectors; print(mimetypes.inited)"
    root = pathlib.Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"  # before: True


@pytest.mark.parametrize("value", [text for text, _ in FOUND])
@pytest.mark.parametrize("before", ["", "é "])  # in a text that is not ASCII too
def test_streamed_the_address_is_found_however_cut(value: str, before: str) -> None:
    text = (
        "the model wrote this reply for you, which is long enough to be read at once: " * 3 + before + value + " thanks"
    )
    assert EMAIL.scan_output(text) == {"pii:email"}
    start = text.index(value)
    for cut in range(start, start + len(value) + 1):
        scanner = EMAIL.stream()
        scanner.feed(text[:cut])
        scanner.feed(text[cut:])
        scanner.end_text()
        assert scanner.found == {"pii:email"}, cut


# a quoted local part in JSON in a string, a tool call's arguments (`{"to": "\\"john doe\\"@example.com"}`): its quotes
# escaped, it was not found (2026-12-04, review)
@pytest.mark.parametrize(
    "address",
    [
        '"john doe"@example.com',
        '"a b"@example.com_2024.csv',
        '"j.doe."@example.co.uk',
        # before an IP address in brackets, found unescaped since 8d919bb, escaped not (2026-12-05, helper revemail)
        '"john doe"@[192.0.2.1]',
        '"john doe"@[2001:db8::1]',
    ],
)
@pytest.mark.parametrize("before", ["", "é "])
def test_a_quoted_local_part_in_json_in_a_string_is_found(address: str, before: str) -> None:
    arguments = orjson.dumps({"to": address, "note": before}).decode()
    assert EMAIL.scan(arguments) == {"pii:email"}  # before: frozenset()
    assert "john" not in EMAIL.mask(arguments) and "doe" not in EMAIL.mask(arguments)
    assert orjson.loads(EMAIL.mask(arguments))["to"].startswith("[pii:email]")  # (the JSON masked, still JSON)


def test_a_tool_calls_arguments_with_a_quoted_local_part_are_refused(vllm: Any, make_proxy: Any) -> None:
    server, url = vllm
    proxy = make_proxy(CONFIG, UPSTREAM=url)
    client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="sk-unused", max_retries=0)
    arguments = orjson.dumps({"to": '"john doe"@example.com', "subject": "invoice"}).decode()
    messages: list[Any] = [
        {"role": "user", "content": "mail the invoice"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "send", "arguments": arguments}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sent"},
    ]  # fmt: skip
    with pytest.raises(openai.PermissionDeniedError) as refused:  # before: answered, the address read by the model
        client.chat.completions.create(model=SERVED, messages=messages, extra_headers={"x-purpose": "marketing"})
    assert proxy_error(refused.value.response)["code"] == "purpose_denied"
    assert not server.data_requests()  # nothing reached the model
    allowed = client.chat.completions.with_raw_response.create(model=SERVED, messages=messages)
    assert "pii:email" in allowed.http_response.headers["x-data-labels"].split(",")


# code a code assistant is sent, each refused 403 purpose_denied before: `x@self.in` read as an address with a file's
# name after it; `q@k.transpose` read as an address; a `pii:email` found between two strings
CODE_ASKED_ABOUT = {
    "multihead attention": "What does this line of MultiheadAttention do?\n" + "\n".join(MATRIX_PRODUCTS),
    "attention code": "Why is my attention slow?\n```python\nattn=q@k.transpose(-2,-1)\n"
    + "\n".join(ML_CODE)
    + "\n```",
    "code listing domains": "Why does this reject my address?\n" + "\n".join(CODE_BETWEEN_STRINGS + RUBY),
}


@pytest.mark.parametrize("content", CODE_ASKED_ABOUT.values(), ids=CODE_ASKED_ABOUT.keys())
def test_a_call_asking_about_code_is_answered(content: str, vllm: Any, make_proxy: Any) -> None:
    server, url = vllm
    proxy = make_proxy(CONFIG, UPSTREAM=url)
    client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="sk-unused", max_retries=0)
    messages: Any = [{"role": "user", "content": content}]
    answered = client.chat.completions.with_raw_response.create(
        model=SERVED, messages=messages, extra_headers={"x-purpose": "marketing"}
    )
    assert answered.http_response.status_code == 200
    assert "pii:email" not in answered.http_response.headers.get("x-data-labels", "").split(",")
    assert answered.parse().choices[0].message.content
    assert server.data_requests()  # the model read it


@pytest.mark.parametrize(
    "content",
    [
        "Summarise alice@example.com_2024.csv for me",
        'Draft a reply to "john doe"@example.com about the invoice.',
        "Draft a reply to user@[192.168.0.1] about the invoice.",
        "Open https://x.test/login?next=%2Finbox%3Fto%3Dalice%2540example.com",
    ],
)
def test_a_call_holding_one_is_refused_where_its_zone_forbids_the_purpose(
    vllm: Any, make_proxy: Any, content: str
) -> None:
    server, url = vllm
    proxy = make_proxy(CONFIG, UPSTREAM=url)
    client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="sk-unused", max_retries=0)
    messages: Any = [{"role": "user", "content": content}]
    with pytest.raises(openai.PermissionDeniedError) as refused:  # before: answered, the address read by the model
        client.chat.completions.create(model=SERVED, messages=messages, extra_headers={"x-purpose": "marketing"})
    assert proxy_error(refused.value.response)["code"] == "purpose_denied"
    assert not server.data_requests()  # nothing reached the model
    allowed = client.chat.completions.with_raw_response.create(model=SERVED, messages=messages)
    assert "pii:email" in allowed.http_response.headers["x-data-labels"].split(",")


# a stream scanner's window that starts inside a local part longer than 64 characters (`q` * 200 + `bob@…`), or ends
# inside a top-level domain or a run of underscores that a word goes on after (`…@example.co` | `mqqq…`): the text read
# whole holds no address, and streamed one was found at some cuts (2026-12-05, helper emails)
STREAM_CUTS = [
    ("x x " + "q" * 200 + "bob@example.com" + "q" * 200 + " é", range(400, 440)),
    ("q" * 200 + "%40bob@example.com" + "q" * 200, range(200, 240)),
    ("q" * 200 + "\ufdfabob@example.com" + "q" * 200, range(200, 240)),
    ("%40 " + "q" * 200 + "bob@example.com\ufdfa" + "q" * 200, range(240, 270)),
    ("é\n\ufdfa" + "q" * 200 + "\u200bbob@example.com\n" + "q" * 200, range(380, 420)),
    ("y" * 150 + "/bob@example.com_foo", range(150, 172)),
    ("y" * 150 + "/bob@example.com" + "y" * 150, range(150, 172)),
    # and found, as read whole: read again as the end when the window ended in it
    ("y" * 150 + "/bob@example.com", range(150, 167)),
    ("y" * 150 + "/bob@example.com_", range(150, 168)),
    ("é" + "y" * 150 + "/bob@exa%40mple.com", range(150, 172)),
    ("y" * 150 + "/bob@example.com_2024.csv", range(150, 177)),
]


def _streamed_found(text: str, cuts: Iterable[int]) -> Iterator[tuple[int, set[str]]]:
    """At each cut, what `text` fed in two pieces is found to hold, by the scanner a stream gets (`EMAIL.stream()`, a
    custom pattern's batches too when one is configured) and by the plain `StreamScanner`."""
    for cut in cuts:
        for scanner in (EMAIL.stream(), detectors.StreamScanner(EMAIL)):
            scanner.feed(text[:cut])
            scanner.feed(text[cut:])
            scanner.end_text()
            yield cut, scanner.found


@pytest.mark.parametrize(("text", "cuts"), STREAM_CUTS)
def test_streamed_an_address_cut_in_a_long_token_is_read_as_whole(text: str, cuts: range) -> None:
    whole = EMAIL.scan_output(text)
    for cut, found in _streamed_found(text, cuts):
        assert found == whole, cut  # before: {"pii:email"} where whole is none, at some cuts


# and cut inside what goes on after the address: a file's name (`_2024.csv` | `ale`), a domain's next label (`.` |
# `ccyyy…`): found in the window, none in the text read whole (2026-12-05, helper revemails)
@pytest.mark.parametrize(
    "text",
    [
        "y" * 150 + "/bob@example.com_2024.csvale",
        "y" * 150 + "/bob@example.com_2024.csv" + "y" * 50,
        "y" * 150 + "/bob@example.com.cc" + "y" * 50,
        "y" * 150 + "/bob@example.com_2024.csv",  # (found, as read whole)
    ],
)
def test_streamed_an_address_cut_in_what_goes_on_after_it_is_read_as_whole(text: str) -> None:
    whole = EMAIL.scan_output(text)
    for cut, found in _streamed_found(text, range(140, len(text))):
        assert found == whole, cut  # before: {"pii:email"} where whole is none, at some cuts


# a product in code whose operand stands after a run of white space (a continuation line, two spaces): the tail a stream
# scanner reads again started after the run, and the operand first in it read as an address in prose (`_in_prose`)
# where the text read whole holds none (2026-12-05, helper revemails)
@pytest.mark.parametrize(
    "code",
    [
        "out =\n    emb@model.to(device)",
        "out =  emb@model.to(device)",
        "return  emb@model.to(device)",
        "f(a,\n  emb@model.to(dev))",
    ],
)
def test_streamed_code_after_a_run_of_white_space_is_no_address(code: str) -> None:
    text = "w " * 80 + code + "z" * 130 + " tail"
    assert EMAIL.scan_output(text) == frozenset()
    for cut, found in _streamed_found(text, range(1, len(text), 7)):
        assert found == set(), cut  # before: {"pii:email"} at some cuts


# and one glued to `(` or `=` in a long token, that the tail a stream scanner reads again starts with (no white space
# before it in the window's last 256 characters): read as first in the text, in prose (2026-12-05, helper revemails)
@pytest.mark.parametrize(
    "text",
    [
        "q" * 124 + ".cm(alice@gmx.at(home).c" + "q" * 109,
        "q" * 109 + "_v2u@self.W.data.c=emb@model.to(d)alice" + "q" * 109,
    ],
)
def test_streamed_code_glued_in_a_long_token_is_no_address(text: str) -> None:
    assert EMAIL.scan_output(text) == frozenset()
    for cut, found in _streamed_found(text, range(1, len(text))):
        assert found == set(), cut  # before: {"pii:email"} at some cuts


# and one whose operator or keyword stands before it on its line, a window's tail cut after it (at the white space
# after its token): the tail started with the operand, read as first in the text, in prose, where the text read whole
# holds none (2026-12-05, helper detfuzz)
@pytest.mark.parametrize(
    "code",
    [
        "x = mb@mel.to(\n",
        "out = emb@model.to(\n    device)\n",
        "return emb@model.to(\n",
        "y = emb@model.to( ",
        "x = mb@mel.to(\n@ ",
        "= mb@del.to(\n@ @Dgate().T ",
    ],
)
def test_streamed_code_whose_operator_the_tail_cut_off_is_no_address(code: str) -> None:
    text = code + "word " * 40
    assert EMAIL.scan_output(text) == frozenset()
    for cut, found in _streamed_found(text, range(1, len(text))):
        assert found == set(), cut  # before: {"pii:email"} at some 70 cuts each


class _ReadBytes(bytes):
    """Bytes that count how many of them `rfind` reads."""

    read = 0

    def rfind(self, sub: Any, start: Any = 0, end: Any = None) -> int:
        stop = len(self) if end is None else end
        _ReadBytes.read += max(0, stop - start)
        return super().rfind(sub, start, end)


@pytest.mark.interpreted  # (bytes of a subclass read by `_in_prose`)
def test_whether_an_address_stands_in_prose_reads_no_more_than_the_white_space_before_it() -> None:
    # `_in_prose` looked back to the line's start for a list's bullet whenever an operator stood before the address:
    # a line of a megabyte of `= ab@cde.to(` took 1.5 s to scan, a quarter of it 0.07 s (2026-12-05, helper revemails)
    raw = _ReadBytes(b"x" * 100_000 + b" = ab@cde.to(device)")
    _ReadBytes.read = 0
    assert not detectors._in_prose(raw, raw.index(b"ab@"), "")
    assert _ReadBytes.read < 100  # before: 100,002
    bullet = _ReadBytes(b"x" * 100_000 + b"\n  - ab@cde.to(office)")
    assert detectors._in_prose(bullet, bullet.index(b"ab@"), "")
