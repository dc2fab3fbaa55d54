"""The HTTP front door: the FastAPI app and one router per resource."""
