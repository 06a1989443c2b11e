"""Sample data bundled with mammosearch, written for the project (no patient data)."""

__all__: list[str] = []
