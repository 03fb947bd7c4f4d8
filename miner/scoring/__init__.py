"""The learned failure scorer: its features from the conversation, the model it chooses, the scope of its scores."""
