"""Intake's rules, with no broker, database or HTTP: what makes a submission acceptable
(``submission``), where a referral stands (``status``), who may submit or cancel in
whose name (``senders``), a referrer's registration and quotas (``referrers``), and
when a referral may still be withdrawn (``withdrawal``)."""
