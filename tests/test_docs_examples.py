"""Every example of the README and of docs/ runs as a reader would copy it (tests/docs.py says
how each kind of block runs). One reader's session per document, in the document's order: what
an earlier block started (`littleflow serve`, a worker) still runs for the blocks after it.
Only what names this machine's own places changes: a port, a directory, a tokens file."""

from __future__ import annotations

import contextlib
import socket

import pytest
from k8sserver import KUBECONFIG, k8s_server  # noqa: F401 - a fixture
from support import need_module, need_redis_server

from docs import CHECKED, REPO, Block, Session, blocks

#: documents whose examples this test does not run
NOT_READ: set[str] = set()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def read(document: str, session: Session) -> None:
    """Run every block of ``document`` in ``session``; stop what still runs at the end."""
    found = blocks(REPO / document)
    try:
        for block in found:
            session.run(block)
    except BaseException:
        with contextlib.suppress(AssertionError):  # the block's failure is the one to show
            session.stop()
        raise
    session.stop()
    not_run = [block.where for block in found if block.marker is None and block not in session.ran]
    assert not not_run, f"blocks that did not run: {not_run}"


def test_every_document_is_read():
    documents = {"README.md"} | {f"docs/{path.name}" for path in (REPO / "docs").glob("*.md")}
    assert documents - NOT_READ == {
        "README.md",
        "docs/language.md",
        "docs/security.md",
        "docs/kubernetes.md",
        "docs/protocol.md",
        "docs/workers.md",
        "docs/schedules.md",
    } | ({"docs/scaling.md"} & documents)


def test_the_blocks_not_run_are_few():
    """Each says why (output, a picture, or what it needs that a test cannot have); a new one
    raises this number only for a reason as good."""
    found = [
        block
        for document in ("README.md", "docs/security.md", "docs/kubernetes.md")
        for block in blocks(REPO / document)
    ]
    skipped = [block.where for block in found if block.marker is not None and block.marker not in CHECKED]
    assert len(found) >= 20 and len(skipped) <= 8, skipped


def test_the_readme(tmp_path):
    need_redis_server()  # for `littleflow serve`
    read("README.md", Session.start(tmp_path, replace={":8080": f":{free_port()}"}))


def test_the_language_doc(tmp_path):
    """Every construct's example: compiled, and where it shows a graph, an output or an error, run and compared."""
    read("docs/language.md", Session.start(tmp_path))


def test_the_security_doc(tmp_path, redis_url):
    data = tmp_path / "srv-data"
    data.mkdir()
    tokens = tmp_path / "tokens"
    tokens.write_text("admin:" + "t" * 32 + "\n")
    session = Session.start(
        tmp_path / "reader",
        env={"LITTLEFLOW_REDIS_URL": redis_url},
        replace={"/srv/data": str(data), "/etc/littleflow/tokens": str(tokens), ":8080": f":{free_port()}"},
    )
    read("docs/security.md", session)


def test_the_protocol_doc(tmp_path, redis_url):
    read("docs/protocol.md", Session.start(tmp_path, env={"LITTLEFLOW_REDIS_URL": redis_url}))


def test_the_schedules_doc(tmp_path, redis_url):
    read("docs/schedules.md", Session.start(tmp_path, env={"LITTLEFLOW_REDIS_URL": redis_url}))


def test_the_workers_doc(tmp_path):
    need_redis_server()  # for `littleflow serve`
    read("docs/workers.md", Session.start(tmp_path))


def test_the_scaling_doc(tmp_path, redis_url, cluster):
    """Its single-server examples on the test's Redis, its cluster examples on a real 3-node
    Redis Cluster (by a node that does not serve the slot of the prefix they use)."""
    from rediscluster import away_from

    session = Session.start(
        tmp_path,
        env={"LITTLEFLOW_REDIS_URL": redis_url},
        replace={"redis://10.0.0.1:7000/0": away_from(cluster, "{team-a}")},
    )
    read("docs/scaling.md", session)


def test_the_kubernetes_doc(tmp_path, redis_url, k8s_server):
    need_module("kubernetes", "kubernetes")
    session = Session.start(tmp_path, env={"LITTLEFLOW_REDIS_URL": redis_url})
    (tmp_path / ".kube").mkdir()
    (tmp_path / ".kube" / "config").write_text(KUBECONFIG.format(url=k8s_server.url))
    read("docs/kubernetes.md", session)


def test_a_block_that_does_not_do_what_it_shows_fails_naming_its_place(tmp_path, redis_url):
    session = Session.start(tmp_path, env={"LITTLEFLOW_REDIS_URL": redis_url})
    cases = [
        ("sh", None, "littleflow compile does-not-exist.flow\n", r"README\.md:7: exit 2"),
        ("text", None, "hello\n", "nothing runs a block of language 'text'"),
        ("python", None, "print(1 + 1)\n# 3\n", r"README\.md:7: it says it prints '3'"),
        (
            "console",
            None,
            "$ echo 'A →' | littleflow compile -\n<stdin>:1:4: error: …\n",
            r"README\.md:7: `echo 'A →' \| littleflow compile -` printed",
        ),
        ("flow", None, "A → { B\n", r"README\.md:7:1:5: error: unclosed subflow"),
        (
            "sh",
            "synopsis",
            "littleflow run FLOW --no-such-option\n",
            "`littleflow run` has no --no-such-option",
        ),
        ("sh", "an excuse", "true\n", "unknown marker 'example: an excuse'"),
    ]
    for lang, marker, text, message in cases:
        with pytest.raises(AssertionError, match=message):
            session.run(Block(REPO / "README.md", 7, lang, text, marker))
    session.run(Block(REPO / "README.md", 7, "python", "print(1 + 1)\n# 2\n", None))
    session.run(
        Block(
            REPO / "README.md",
            7,
            "sh",
            "littleflow events --follow &   # until stopped\nlittleflow send hello --data '{}'\n",
            None,
        )
    )
    session.stop()
