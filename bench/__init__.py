"""Speed measurements. ``python -m bench`` runs them all and prints the figures the README carries."""
