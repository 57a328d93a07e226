"""``catalyst-dl serve``: background removal over HTTP (FastAPI + uvicorn) with dynamic batching and a web page."""
