"""The scheduler's HTTP routers: the ARS's (``territory``: its decisions about centres
and what it reads of its region) and the patient's link (``patient``); what the ARS's
routes reach is ``state``."""
