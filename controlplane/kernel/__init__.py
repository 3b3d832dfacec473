"""The kernel: what the control plane, the chatbot and the tools share."""
