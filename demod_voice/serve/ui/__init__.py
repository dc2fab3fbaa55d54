"""The web page (Gradio), mounted on the HTTP server at /ui."""
