"""Reports in Japanese and English: the mapping's stage labels, locale formats, every surface."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from sync.cli import app
from sync.funnel.report import render_table
from sync.funnel.report.html import render_html
from sync.funnel.report.i18n import MESSAGES, Locale
from sync.mapping import load_mapping, parse_mapping_text
from sync.store.db import Store, upgrade
from tests.unit.funnel_history import MAPPING, simulate
from tests.unit.test_report_html import CHARTS, Dom, dump_dom, report

DEFAULT = load_mapping(MAPPING)


def test_every_message_exists_in_both_languages() -> None:
    assert set(MESSAGES["en"]) == set(MESSAGES["ja"])
    for key, english in MESSAGES["en"].items():
        fields = sorted(part.split("}")[0] for part in english.split("{")[1:])
        japanese = sorted(part.split("}")[0] for part in MESSAGES["ja"][key].split("{")[1:])
        assert fields == japanese, key


def test_locale_formats() -> None:
    en, ja = Locale.of("en", DEFAULT), Locale.of("ja", DEFAULT)
    day = datetime(2026, 10, 1, 9, 5, tzinfo=UTC)
    assert (en.day(day), ja.day(day)) == ("1 Oct 2026", "2026年10月1日")
    assert (en.moment(day), ja.moment(day)) == ("2026-10-01 09:05", "2026年10月1日 09:05")
    assert [ja.duration(h) for h in (0.5, 6.5, 76.8, None)] == ["30分", "6.5時間", "3.2日", "—"]
    assert [en.duration(h) for h in (0.5, 6.5, 76.8)] == ["30 min", "6.5 h", "3.2 days"]
    assert (ja.num(1234567), ja.money(10_000_000), ja.pct(0.059)) == ("1,234,567", "10,000,000", "5.9%")
    assert (ja.allowance("24h"), ja.allowance("5 business days"), en.allowance("24h")) == (
        "24時間",
        "5営業日",
        "24h",
    )
    assert ja.rule("mql", "sal", "24h") == "MQL → 営業受入（24時間以内）"
    with pytest.raises(ValueError, match="unsupported language 'fr'"):
        Locale.of("fr")


def test_stage_names_come_from_the_mapping_first() -> None:
    text = (MAPPING / "default.yaml").read_text(encoding="utf-8")
    text = text.replace("label: {en: SQL, ja: 商談化}", "label: {en: Qualified, ja: 有望商談}")
    text = text.replace("    label: {en: Won, ja: 受注}\n", "")  # no label: the built-in name
    mapping = parse_mapping_text(text)
    en, ja = Locale.of("en", mapping), Locale.of("ja", mapping)
    assert (en.stage("sql"), ja.stage("sql")) == ("Qualified", "有望商談")
    assert (en.stage("won"), ja.stage("won")) == ("Won", "受注")
    assert ja.stage("nurture_again") == "Nurture again"  # unknown ids stay readable


def test_html_report_in_japanese_in_a_real_browser(tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    page.write_text(render_html(report(), Locale.of("ja", DEFAULT)), encoding="utf-8")
    html = dump_dom(page)
    dom = Dom()
    dom.feed(html)
    assert '<html lang="ja">' in html
    assert dom.items[0] == (
        "2026年10月1日から2026年10月31日までにMQLになった170人のうち、34人がその後SQLになり（20%）、"
        "10人が受注しました（5.9%）。受注金額は合計10,000,000です。"
    )
    text = "\n".join(dom.items)
    assert "「Webinar <live>」で、受注10件中7件" in text
    assert (
        "SLA「First touch」（MQL → 営業受入（24時間以内））の遵守率は94%でした。期限超過のまま未対応が2件あります。"
        in text
    )
    assert dom.svgs["chart-funnel"] == "期間中に各ステージに到達した人数"
    assert set(dom.svgs) - {""} == set(CHARTS)  # (the unnamed ones are the keys' swatches)
    assert '<td class="text">商談化</td>' in html and "<dt>SLA</dt>" in html
    assert "All times UTC" not in html and "時刻はすべてUTCです" in html
    assert dom.scripts == 0 and dom.external == []


def test_cli_table_and_html_follow_closedloop_language(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    upgrade(url)
    store = Store(url)
    simulate(store, 120, seed=2)
    store.dispose()
    runner = CliRunner()
    args = ["funnel", "report", "--since", "2026-10-01", "--until", "2026-11-01"]
    env = {"CLOSEDLOOP_DATABASE_URL": url, "CLOSEDLOOP_MAPPINGS": str(MAPPING)}
    ja = runner.invoke(app, args, env={**env, "CLOSEDLOOP_LANGUAGE": "ja"})
    assert ja.exit_code == 0, ja.output
    assert "ファネル 2026年10月1日〜2026年10月31日" in ja.stdout
    assert "商談化" in ja.stdout and "期間中の到達数" in ja.stdout and "Reached" not in ja.stdout
    en = runner.invoke(app, args, env={**env, "CLOSEDLOOP_LANGUAGE": "en"})
    assert "Funnel 1 Oct 2026 – 31 Oct 2026" in en.stdout and "商談化" not in en.stdout
    html = runner.invoke(app, [*args, "--format", "html"], env={**env, "CLOSEDLOOP_LANGUAGE": "ja"})
    assert '<html lang="ja">' in html.stdout and "用語の説明" in html.stdout
    bad = runner.invoke(app, args, env={**env, "CLOSEDLOOP_LANGUAGE": "fr"})
    assert bad.exit_code != 0 and "CLOSEDLOOP_LANGUAGE" in str(bad.exception or bad.output)


def test_rich_table_in_japanese_keeps_figures() -> None:
    console = Console(record=True, width=160)
    render_table(report(), console, Locale.of("ja", DEFAULT))
    out = console.export_text()
    assert "ステージ" in out and "受注" in out and "170" in out and "遵守率" in out


def test_customer_success_in_japanese_in_a_real_browser(tmp_path: Path) -> None:
    from tests.unit.test_report_html import cs_report

    page = tmp_path / "cs-ja.html"
    page.write_text(render_html(cs_report(), Locale.of("ja", DEFAULT)), encoding="utf-8")
    text = dump_dom(page)
    for phrase in ("カスタマーサクセス", "顧客になった月別の解約", "キックオフSLA遵守率", "アップセル率",
                   "+40（回答5件：推奨者3人、批判者1人）", "ファネルで最も時間がかかっているのは商談化から受注の間",
                   "新規顧客8件のうち、解約は25%、アップセルは38%でした。", "佐藤 花子"):  # fmt: skip
        assert phrase in text, phrase
    console = Console(record=True, width=160)
    render_table(cs_report(), console, Locale.of("ja", DEFAULT))
    out = console.export_text()
    assert "カスタマーサクセス" in out and "佐藤 花子" in out and "2026-10" in out
