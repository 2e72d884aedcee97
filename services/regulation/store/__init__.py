"""Regulation's state, the one place of the service that speaks SQL: the schema
(``tables``), the protocol versions and which one applies (``protocols``), the cases
and the append-only trail of their decisions (``cases``)."""
