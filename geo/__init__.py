"""Anwang's spatial core: database, models, coordinates, areas, incidents, patrols. No Flask here."""
