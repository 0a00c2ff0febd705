"""`python -m clubstack.blog build SRC OUT`: the generator without the web app."""

from clubstack.blog.cli import blog

blog(prog_name="python -m clubstack.blog")
