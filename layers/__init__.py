"""Map layers and analytics built on geo/. No Flask here."""
