"""The web console of the ARS, the centres and Centre 15 (``aiguillage console``)."""
