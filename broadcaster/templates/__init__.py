"""Message templates: versions, variants per language, the catalog in the database."""
