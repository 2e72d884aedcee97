"""The notifier's pure rules: the texts told to centres and referrers (``templates``),
the patients' notices (``patient_notices``), and how long an SMS is (``sms``). No I/O."""
