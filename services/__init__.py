"""The four Aiguillage services. None imports another."""
