"""Report languages (``CLOSEDLOOP_LANGUAGE=en|ja``): messages, stage names and locale formatting.

Stage names come from the mapping's ``label`` first, then the built-in names of the standard stage
ids, then the id itself. Numbers keep thousands separators in both languages (Japanese uses the
same ``1,234``); dates read ``1 Oct 2026`` / ``2026年10月1日``; durations ``6.5 h`` / ``6.5時間``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping as MappingABC
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

Language = Literal["en", "ja"]
LANGUAGES: tuple[Language, ...] = ("en", "ja")

STAGE_NAMES: dict[str, dict[str, str]] = {
    "en": {
        "lead": "Lead",
        "mql": "MQL",
        "sal": "SAL",
        "sql": "SQL",
        "opportunity": "Opportunity",
        "won": "Won",
        "lost": "Lost",
        "disqualified": "Disqualified",
        "recycled": "Recycled",
        "kickoff": "Kickoff",
        "customer": "Customer",
        "expansion": "Expansion",
        "churned": "Churned",
    },
    "ja": {
        "lead": "リード",
        "mql": "MQL",
        "sal": "営業受入",
        "sql": "商談化",
        "opportunity": "商談",
        "won": "受注",
        "lost": "失注",
        "disqualified": "対象外",
        "recycled": "ナーチャリング戻し",
        "kickoff": "キックオフ",
        "customer": "顧客",
        "expansion": "アップセル",
        "churned": "解約",
    },
}

LEGENDS: dict[str, tuple[tuple[str, str], ...]] = {
    "en": (
        ("Lead", "A person we have contact details for (form, event, list)."),
        ("MQL", "Marketing qualified lead: met the scoring rule and was handed to sales."),
        ("SAL", "Sales accepted lead: sales took the MQL and made first contact."),
        ("SQL", "Sales qualified lead: qualified by inside sales (budget, authority, need, timeline)."),
        ("Opportunity", "A deal is being worked by field sales."),
        ("Won / Lost", "The deal was signed / the deal was lost (sales records why)."),
        ("Disqualified", "Sales decided the lead is not a fit (e.g. no budget, a student)."),
        ("Recycled", "Sent back to marketing for nurturing; may come back as an MQL later."),
        ("SLA", "Service-level agreement between teams, e.g. first contact within 24 hours of an MQL."),
    ),
    "ja": (
        ("リード", "連絡先がわかっている見込み客（フォーム、イベント、リストなど）。"),
        ("MQL", "マーケティングが有望と判断したリード。スコア基準を満たし、営業に引き渡された。"),
        ("SAL", "営業が受け入れたリード。インサイドセールスが初回接触した。"),
        ("SQL", "営業が有望と判断したリード（予算・決裁者・ニーズ・時期を確認済み）。"),
        ("商談", "フィールドセールスが案件として進めている。"),
        ("受注 / 失注", "契約に至った / 至らなかった（営業が理由を記録）。"),
        ("対象外", "営業が対象外と判断した（予算なし、学生など）。"),
        ("ナーチャリング戻し", "育成のためマーケティングに戻した。後で再びMQLになることがある。"),
        ("SLA", "部門間で合意した対応期限。例：MQLから24時間以内に初回接触。"),
    ),
}

MESSAGES: dict[str, dict[str, str]] = {
    "en": {
        "title": "Marketing and sales funnel, {since} – {until}",
        "subtitle": "From first lead to won deal, measured from HubSpot and Salesforce together. "
        "Terms such as MQL, SAL and SQL are explained at the bottom of the page.",
        "in_short": "In short",
        "legend": "What the words mean",
        "footer": "Generated {at} UTC by Closedloop. All times UTC.",
        "of": "{pct} ({part} of {whole})",
        "rule": "{src} → {dst} within {allowance}",
        "rule_complete": "{stage}: fields filled on entry",
        "period": "between {since} and {until}",
        "no_mqls": "No one became an MQL {period}.",
        "worth": ", worth {amount} in total.",
        "summary_mqls": "Of the {mqls} people who became MQLs {period}, {sqls} have since become SQLs "
        "({sql_pct}) and {wins} won deals ({won_pct}){worth}",
        "summary_best": "The campaign with the most wins was “{name}”: {best} of the {wins} wins.",
        "summary_speed": "Half of the MQLs that reached {stage} did so within {median} "
        "(9 in 10 within {p90}).",
        "summary_sla": "SLA “{name}” ({rule}) was kept {pct} of the time",
        "summary_sla_open": "; {n} missed and still waiting.",
        "summary_scores": "MQLs scoring {high} were won {high_pct} of the time, "
        "against {low_pct} for those scoring {low}.",
        "summary_loss": "The most common recorded reason for lost deals: “{reason}” ({count} of {total}).",
        "summary_loss_missing": "{missing} of {total} lost deals have no loss reason recorded in Salesforce.",
        "funnel": "Funnel",
        "funnel_chart": "People reaching each funnel stage in the period",
        "of_stage_above": "{pct} of the stage above",
        "reached": "reached",
        "stage": "Stage",
        "reached_in_period": "Reached in period",
        "in_stage_now": "In this stage now",
        "funnel_explain": "How many different people entered each stage during the period. ",
        "funnel_detours": "Left the main path — {detours}.",
        "conversion": "Conversion and speed",
        "within_days": " within {days} days",
        "conversion_explain": "Of the people who entered the first stage during the period, how many "
        "went on to the second (skipping it counts as reaching it), and how long that took.",
        "step": "Step",
        "entered": "Entered",
        "went_on": "Went on",
        "rate": "Rate",
        "median": "Typical time (median)",
        "p90": "9 in 10 within",
        "campaigns": "Conversion by campaign",
        "campaigns_chart": "Share of each campaign's MQLs that became SQLs and won deals",
        "to_sql": "to SQL {of}",
        "won_of": "won {of}",
        "no_mqls_chart": "No MQLs in this period.",
        "campaign": "Campaign",
        "mqls": "MQLs",
        "sqls": "SQLs",
        "wins": "Wins",
        "won_amount": "Won amount",
        "share_of_wins": "Share of all wins",
        "became_sql": "became SQL",
        "became_won": "became a won deal",
        "campaigns_explain": "The MQLs of the period, by the campaign that brought them in, "
        "and what they became.",
        "none_recorded": "None recorded in this period.",
        "lost_chart": "Why deals were lost",
        "dq_chart": "Why leads were disqualified",
        "loss_reasons_count": "Loss reasons (count)",
        "reasons_explain": "Reasons recorded by sales when a deal was lost or a lead disqualified "
        "during the period.",
        "lost_deals": "Lost deals",
        "dq_leads": "Disqualified leads",
        "reasons": "Why deals were lost and leads disqualified",
        "score_bar": "score {label}",
        "score_chart": "Win rate by lead score at the time of MQL",
        "no_scores": "No scored MQLs in this period.",
        "scores_explain": "Does a higher marketing score mean a better chance to win? Each bar is the "
        "share of the period's MQLs in that score range that later became won deals.",
        "scores": "Is the lead score right?",
        "met_on_time": "met on time",
        "missed": "missed",
        "cancelled": "cancelled (left the funnel)",
        "running": "still running",
        "kept": "{pct} kept",
        "sla_chart": "SLA compliance: agreed response times between teams",
        "no_slas": "No SLAs configured.",
        "sla": "SLA",
        "rule_col": "Rule",
        "met_col": "Met on time",
        "missed_col": "Missed",
        "missed_waiting": "Missed, still waiting",
        "kept_col": "Kept",
        "sla_explain": "Timers started in the period. “Kept” is the share met on time among those "
        "finished (met or missed); people who left the funnel in time are not counted.",
        "slas": "Response-time agreements (SLAs)",
        "no_campaign": "No campaign recorded",
        # dashboard
        "dashboard": "Live funnel dashboard",
        "filters": "Filters",
        "since": "From",
        "until": "To",
        "owner": "Owner",
        "all": "All",
        "apply": "Apply",
        "refreshes": "Refreshes every {seconds} seconds. Last updated {at} UTC.",
        "login": "Sign in to the dashboard",
        "token": "Dashboard token",
        "sign_in": "Sign in",
        "bad_token": "That token is not right.",
        # terminal tables
        "t_title": "Funnel {since} – {until}",
        "t_stages": "Stages",
        "t_in_stage_now": "In stage now",
        "t_moves_in": "Moves in",
        "t_moves_out": "Moves out",
        "t_conversion": "Conversion (of those who entered the first stage in the period)",
        "t_from_to": "From → to",
        "t_within": " (within {days} days)",
        "t_median": "Median time",
        "t_p90": "90% within",
        "t_campaigns": "Campaigns (MQLs of the period and what they became)",
        "t_mql_sql": "MQL→SQL",
        "t_sql_won": "SQL→won",
        "t_share": "Share of wins",
        "t_reason": "Reason",
        "t_count": "Count",
        "t_share_col": "Share",
        "t_scores": "Score at MQL time vs outcome",
        "t_score": "Score",
        "t_won": "Won",
        "t_lost": "Lost",
        "t_win_rate": "Win rate",
        "t_slas": "SLAs (timers started in the period)",
        "t_met": "Met",
        "t_breached": "Breached",
        "t_cancelled": "Cancelled",
        "t_running": "Running",
        "t_open": "Open breaches",
        "t_compliance": "Compliance",
        "sla_by": "SLA breaches by {dimension}",
        "sla_breakdown": "Where SLAs are missed: by owner, team, campaign and week",
        "sla_by_explain": "Timers started in the period that finished (met on time or missed), all SLAs "
        "together: by owner (the person's owner in the SLA's team, else the current owner), by the "
        "person's campaign, by the team owning the stage the SLA waits on, and by the week the timer "
        "started (a trend).",
        "dim_owner": "owner",
        "dim_team": "team",
        "dim_campaign": "campaign",
        "dim_week": "ISO week",
        "team_marketing": "Marketing",
        "team_inside_sales": "Inside sales",
        "team_field_sales": "Field sales",
        "summary_sla_team": "The team whose SLAs fail most: {team}, {n} missed, {pct} kept.",
        "team_customer_success": "Customer success",
        "team_sales": "Sales",
        "cs": "Customer success",
        "cs_explain": "After the win: how soon the kickoff happened, how many of the period's new "
        "customers later churned (by the month they became customers) or expanded, and the Net "
        "Promoter Score (% promoters 9-10 minus % detractors 0-6).",
        "cs_figure": "Figure",
        "cs_value": "Value",
        "cs_kickoff_sla": "Kickoff SLA kept",
        "cs_customers": "New customers",
        "cs_churn_rate": "Churn rate",
        "cs_expansion_rate": "Expansion rate",
        "cs_nps": "NPS",
        "cs_nps_value": "{score} ({n} responses: {p} promoters, {d} detractors)",
        "cs_cohort": "Customers since",
        "cs_churned": "Churned",
        "cs_people": "People",
        "cs_by_cohort": "Churn by the month people became customers",
        "summary_slowest": "The funnel loses most time between {src} and {dst}: half take longer than {median}.",
        "summary_kickoff": "Half of the won deals had their kickoff within {median} (9 in 10 within {p90}).",
        "summary_cs": "Of the {n} new customers, {churn} churned and {expansion} expanded.",
        "summary_nps": "Net Promoter Score: {score} from {n} responses.",
    },
    "ja": {
        "title": "マーケティング・営業ファネル（{since}〜{until}）",
        "subtitle": "最初のリードから受注まで、HubSpotとSalesforceを合わせて計測しています。"
        "MQL・SAL・SQLなどの用語はページ下部で説明しています。",
        "in_short": "要点",
        "legend": "用語の説明",
        "footer": "Closedloopが{at}（UTC）に作成。時刻はすべてUTCです。",
        "of": "{pct}（{whole}件中{part}件）",
        "rule": "{src} → {dst}（{allowance}以内）",
        "rule_complete": "{stage}：移行時の必須項目入力",
        "period": "{since}から{until}までに",
        "no_mqls": "{period}MQLになった人はいません。",
        "worth": "。受注金額は合計{amount}です。",
        "summary_mqls": "{period}MQLになった{mqls}人のうち、{sqls}人がその後SQLになり（{sql_pct}）、"
        "{wins}人が受注しました（{won_pct}）{worth}",
        "summary_best": "受注が最も多かったキャンペーンは「{name}」で、受注{wins}件中{best}件でした。",
        "summary_speed": "{stage}に進んだMQLの半数は{median}以内に進みました（9割は{p90}以内）。",
        "summary_sla": "SLA「{name}」（{rule}）の遵守率は{pct}でした",
        "summary_sla_open": "。期限超過のまま未対応が{n}件あります。",
        "summary_scores": "スコア{high}のMQLの受注率は{high_pct}で、スコア{low}では{low_pct}でした。",
        "summary_loss": "記録された失注理由で最も多いのは「{reason}」です（{total}件中{count}件）。",
        "summary_loss_missing": "失注{total}件のうち{missing}件はSalesforceに失注理由が記録されていません。",
        "funnel": "ファネル",
        "funnel_chart": "期間中に各ステージに到達した人数",
        "of_stage_above": "前のステージの{pct}",
        "reached": "到達",
        "stage": "ステージ",
        "reached_in_period": "期間中の到達数",
        "in_stage_now": "現在このステージ",
        "funnel_explain": "期間中に各ステージに入った人数（重複なし）。",
        "funnel_detours": "本流から外れた人：{detours}。",
        "conversion": "転換率とスピード",
        "within_days": "（{days}日以内）",
        "conversion_explain": "期間中に最初のステージに入った人のうち、次のステージに進んだ人の割合"
        "（飛び越えた場合も到達とみなす）と、それにかかった時間。",
        "step": "段階",
        "entered": "開始",
        "went_on": "到達",
        "rate": "転換率",
        "median": "標準的な所要時間（中央値）",
        "p90": "9割が到達するまで",
        "campaigns": "キャンペーン別の転換",
        "campaigns_chart": "各キャンペーンのMQLのうちSQL化・受注した割合",
        "to_sql": "SQL化 {of}",
        "won_of": "受注 {of}",
        "no_mqls_chart": "この期間のMQLはありません。",
        "campaign": "キャンペーン",
        "mqls": "MQL数",
        "sqls": "SQL数",
        "wins": "受注数",
        "won_amount": "受注金額",
        "share_of_wins": "全受注に占める割合",
        "became_sql": "SQL化",
        "became_won": "受注",
        "campaigns_explain": "期間中のMQLを獲得元キャンペーン別に、その後どうなったかを示します。",
        "none_recorded": "この期間の記録はありません。",
        "lost_chart": "失注の理由",
        "dq_chart": "対象外とされた理由",
        "loss_reasons_count": "失注理由（件数）",
        "reasons_explain": "期間中に失注・対象外となった際に営業が記録した理由。",
        "lost_deals": "失注した商談",
        "dq_leads": "対象外のリード",
        "reasons": "失注と対象外の理由",
        "score_bar": "スコア {label}",
        "score_chart": "MQL時点のリードスコア別の受注率",
        "no_scores": "この期間にスコアのあるMQLはありません。",
        "scores_explain": "マーケティングスコアが高いほど受注しやすいか。各バーは、そのスコア帯の"
        "MQLのうち後に受注した割合です。",
        "scores": "リードスコアは妥当か",
        "met_on_time": "期限内に対応",
        "missed": "期限超過",
        "cancelled": "取り消し（ファネル離脱）",
        "running": "計測中",
        "kept": "遵守率 {pct}",
        "sla_chart": "SLA遵守状況：部門間で合意した対応期限",
        "no_slas": "SLAは設定されていません。",
        "sla": "SLA",
        "rule_col": "ルール",
        "met_col": "期限内に対応",
        "missed_col": "期限超過",
        "missed_waiting": "期限超過・未対応",
        "kept_col": "遵守率",
        "sla_explain": "期間中に開始したタイマー。「遵守率」は完了したもの（期限内または期限超過）"
        "のうち期限内に対応した割合で、期限内にファネルを離れた人は数えません。",
        "slas": "対応期限の合意（SLA）",
        "no_campaign": "キャンペーン記録なし",
        "dashboard": "ファネル ライブダッシュボード",
        "filters": "絞り込み",
        "since": "開始日",
        "until": "終了日",
        "owner": "担当者",
        "all": "すべて",
        "apply": "適用",
        "refreshes": "{seconds}秒ごとに自動更新。最終更新 {at}（UTC）。",
        "login": "ダッシュボードにサインイン",
        "token": "ダッシュボードのトークン",
        "sign_in": "サインイン",
        "bad_token": "トークンが正しくありません。",
        "t_title": "ファネル {since}〜{until}",
        "t_stages": "ステージ",
        "t_in_stage_now": "現在の人数",
        "t_moves_in": "流入",
        "t_moves_out": "流出",
        "t_conversion": "転換（期間中に最初のステージに入った人）",
        "t_from_to": "段階",
        "t_within": "（{days}日以内）",
        "t_median": "中央値",
        "t_p90": "9割が到達",
        "t_campaigns": "キャンペーン（期間中のMQLとその後）",
        "t_mql_sql": "MQL→SQL",
        "t_sql_won": "SQL→受注",
        "t_share": "受注シェア",
        "t_reason": "理由",
        "t_count": "件数",
        "t_share_col": "割合",
        "t_scores": "MQL時点のスコアと結果",
        "t_score": "スコア",
        "t_won": "受注",
        "t_lost": "失注",
        "t_win_rate": "受注率",
        "t_slas": "SLA（期間中に開始したタイマー）",
        "t_met": "対応済み",
        "t_breached": "期限超過",
        "t_cancelled": "取り消し",
        "t_running": "計測中",
        "t_open": "未対応の超過",
        "t_compliance": "遵守率",
        "sla_by": "SLA の期限超過（{dimension}別）",
        "sla_breakdown": "SLA 期限超過の内訳：担当者・チーム・キャンペーン・週別",
        "sla_by_explain": "期間中に開始し完了した（期限内または期限超過の）タイマーを全SLA合計で、担当者"
        "（SLAのチームでの担当者、なければ現在の担当者）、キャンペーン（現在の値）、SLAが待つステージを"
        "担当するチーム、タイマーが始まった週（推移）ごとに集計。",
        "dim_owner": "担当者",
        "dim_team": "チーム",
        "dim_campaign": "キャンペーン",
        "dim_week": "ISO週",
        "team_marketing": "マーケティング",
        "team_inside_sales": "インサイドセールス",
        "team_field_sales": "フィールドセールス",
        "summary_sla_team": "最もSLAを守れていないのは{team}：期限超過 {n} 件、遵守率 {pct}。",
        "team_customer_success": "カスタマーサクセス",
        "team_sales": "営業",
        "cs": "カスタマーサクセス",
        "cs_explain": "受注後：キックオフまでの時間、期間中の新規顧客のうち後に解約・アップセルした割合"
        "（顧客になった月別）、NPS（推奨者9〜10点の割合から批判者0〜6点の割合を引いた値）。",
        "cs_figure": "指標",
        "cs_value": "値",
        "cs_kickoff_sla": "キックオフSLA遵守率",
        "cs_customers": "新規顧客",
        "cs_churn_rate": "解約率",
        "cs_expansion_rate": "アップセル率",
        "cs_nps": "NPS",
        "cs_nps_value": "{score}（回答{n}件：推奨者{p}人、批判者{d}人）",
        "cs_cohort": "顧客になった月",
        "cs_churned": "解約",
        "cs_people": "人数",
        "cs_by_cohort": "顧客になった月別の解約",
        "summary_slowest": "ファネルで最も時間がかかっているのは{src}から{dst}の間で、"
        "半数は{median}以上かかっています。",
        "summary_kickoff": "受注からキックオフまで、半数は{median}以内でした（9割は{p90}以内）。",
        "summary_cs": "新規顧客{n}件のうち、解約は{churn}、アップセルは{expansion}でした。",
        "summary_nps": "NPSは{score}でした（回答{n}件）。",
    },
}

_ALLOWANCE = re.compile(r"^(?P<n>[0-9.]+)(?:h| business days?)$")


@dataclass(frozen=True)
class Locale:
    """Everything language-dependent in a report: messages, stage names, number and date formats."""

    language: Language = "en"
    labels: MappingABC[str, str] = field(default_factory=dict)
    teams: MappingABC[str, str] = field(default_factory=dict)  # the mapping's team labels

    @classmethod
    def of(cls, language: str = "en", mapping: Any = None) -> Locale:
        """The locale for ``language`` with the stage labels the mapping gives in that language."""
        if language not in LANGUAGES:
            raise ValueError(f"unsupported language {language!r}: use one of {', '.join(LANGUAGES)}")
        labels = mapping.stage_labels(language) if mapping is not None else {}
        teams = {}
        for team in mapping.teams() if mapping is not None else ():
            text = getattr(team.label, language, None) if team.label else None
            if text:
                teams[team.id] = text
        return cls(language, labels, teams)  # type: ignore[arg-type]

    def t(self, key: str, **values: Any) -> str:
        """The message ``key`` in this language, filled with ``values``."""
        return MESSAGES[self.language][key].format(**values)

    def stage(self, stage_id: str) -> str:
        """Display name of a stage id: the mapping's label, the built-in name, else the id."""
        if stage_id in self.labels:
            return self.labels[stage_id]
        built_in = STAGE_NAMES[self.language].get(stage_id)
        return built_in or stage_id.replace("_", " ").capitalize()

    def legend(self) -> tuple[tuple[str, str], ...]:
        """Term and explanation pairs for the report's glossary."""
        return LEGENDS[self.language]

    @staticmethod
    def num(value: int) -> str:
        """``1234`` → ``1,234`` (the same grouping in English and Japanese)."""
        return f"{value:,}"

    @staticmethod
    def pct(rate: float | None) -> str:
        """``0.2`` → ``20%``, one decimal under 10%; ``—`` when there is no rate."""
        if rate is None:
            return "—"
        value = rate * 100
        return f"{value:.1f}%" if 0 < value < 10 else f"{value:.0f}%"

    def duration(self, hours: float | None) -> str:
        """Hours as ``45 min`` / ``45分``, ``6.5 h`` / ``6.5時間`` or ``3.2 days`` / ``3.2日``."""
        if hours is None:
            return "—"
        ja = self.language == "ja"
        if hours < 1:
            return f"{hours * 60:.0f}分" if ja else f"{hours * 60:.0f} min"
        if hours < 48:
            return f"{hours:.1f}時間" if ja else f"{hours:.1f} h"
        return f"{hours / 24:.1f}日" if ja else f"{hours / 24:.1f} days"

    @staticmethod
    def money(amount: Decimal | float | int) -> str:
        """Thousands separators, no decimals for whole amounts."""
        value = Decimal(str(amount))
        return f"{value:,.0f}" if value == value.to_integral_value() else f"{value:,.2f}"

    def day(self, value: datetime) -> str:
        """``1 Oct 2026`` / ``2026年10月1日``."""
        if self.language == "ja":
            return f"{value.year}年{value.month}月{value.day}日"
        return f"{value.day} {value:%b %Y}"

    def moment(self, value: datetime) -> str:
        """``2026-11-02 08:00`` / ``2026年11月2日 08:00``."""
        if self.language == "ja":
            return f"{self.day(value)} {value:%H:%M}"
        return f"{value:%Y-%m-%d %H:%M}"

    def campaign(self, value: str) -> str:
        """Display name of a campaign group (people without a campaign get a readable label)."""
        return self.t("no_campaign") if value == "(none)" else value

    @staticmethod
    def sla(sla_id: str) -> str:
        """``first_touch`` → ``First touch``."""
        return sla_id.replace("_", " ").replace("-", " ").capitalize()

    def team(self, team: str) -> str:
        """A team's display name: the mapping's label, the built-in name, else the id."""
        return self.teams.get(team) or MESSAGES[self.language].get(f"team_{team}", team)

    @staticmethod
    def nps(score: float | None) -> str:
        """``+23`` / ``-5``; ``—`` when there is no score."""
        return "—" if score is None else f"{score:+.0f}"

    def allowance(self, text: str) -> str:
        """An SLA allowance (``24h``, ``3 business days``) in this language."""
        match = _ALLOWANCE.match(text)
        if self.language != "ja" or not match:
            return text
        return f"{match['n']}時間" if text.endswith("h") else f"{match['n']}営業日"

    def rule(self, from_stage: str, to_stage: str, allowance: str) -> str:
        """``MQL → SAL within 24h``."""
        src, dst = self.stage(from_stage), self.stage(to_stage)
        if from_stage == to_stage:  # a completeness SLA: checked on entering one stage
            return self.t("rule_complete", stage=src)
        return self.t("rule", src=src, dst=dst, allowance=self.allowance(allowance))


ENGLISH = Locale()
