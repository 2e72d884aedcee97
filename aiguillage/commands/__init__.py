"""The ``aiguillage`` sub-commands, one module per area (ars, centre, regulate, broker)."""
