"""`enrollab demo` (the README's main job) completes every step against its embedded server."""

from rich.console import Console

from harness.demo import run_demo


async def test_demo_walks_every_step(tmp_path) -> None:  # type: ignore[no-untyped-def]
    console = Console(record=True, width=120)
    steps = await run_demo(console, data_dir=tmp_path / "data")
    titles = [s.title for s in steps]
    assert len(steps) >= 20
    assert any("cannot create a reseller" in t for t in titles)
    refused = next(s for s in steps if "cannot create a reseller" in s.title)
    assert refused.status == 403 and refused.summary == "account-type-not-allowed"
    search = next(s for s in steps if s.title.startswith("search"))
    assert search.summary.startswith("1 found")
    assert "s3cret" not in console.export_text()
    # DEP-1: the order batch enrolled the three phones, read from the decrypted response.
    answered = next(s for s in steps if "response batch" in s.title)
    assert answered.summary.count("enrolled") == 3, answered.summary
    # PNP-1: a code onboards once; the replaced phone's certificate is denied.
    again = next(s for s in steps if "same code is refused" in s.title)
    assert (again.status, again.summary) == (409, "qr-code-used"), again
    replaced = next(s for s in steps if s.title.startswith("replace the faulty"))
    assert "old certificate denied" in replaced.summary, replaced
    # FF-1: the directly added device, deleted at once, is still billed.
    billed = next(s for s in steps if "billing report" in s.title)
    assert billed.summary == "1 direct addition(s), present now: False", billed
