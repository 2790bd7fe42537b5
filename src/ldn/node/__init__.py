"""The care-provider side: one node per participant organisation."""
