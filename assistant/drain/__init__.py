"""The battery-drain test: words per charge measured to empty, and its report."""
