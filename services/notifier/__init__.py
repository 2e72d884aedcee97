"""The notifier service: tells each centre of its patients, each referrer of its
referral's outcome, each patient of the appointment, Centre 15 of escalations
(README.md)."""
