"""AlexNet Playground's compute core: images, kernels, rendering. Importable without Gradio."""
