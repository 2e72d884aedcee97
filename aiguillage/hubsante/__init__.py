"""The Hub Santé door: Centre 15's regulation software (LRM) refers patients through
the SAMU's national message hub, and hears back the appointment.

Only this package knows the hub's format (EDXL-DE envelope, RC-DE header, RS-EDA cases,
RS-SAS-RDV appointments): inside Aiguillage a case becomes an ordinary Centre 15
referral, published on the ingress like any other.
"""
