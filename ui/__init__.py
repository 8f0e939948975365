"""Gradio tabs: thin layout and wiring over the playground package."""
