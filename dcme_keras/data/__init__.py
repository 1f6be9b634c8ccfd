"""dcme_keras/data."""
