"""dcme_keras/dcme."""
