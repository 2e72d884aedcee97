"""The scheduler's domain: slots from opening hours, and the choice of a slot."""
