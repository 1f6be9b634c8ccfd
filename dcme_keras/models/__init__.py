"""dcme_keras/models."""
