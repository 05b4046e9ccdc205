from ganops.cli import app

app(prog_name="ganops")
