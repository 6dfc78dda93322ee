"""The operator CLI (`activation`): validate and push config, preview requests, connect, replay, watch.

It is installed with the layer (`activation_core`) and the function packages of `functions/` (see
pyproject.toml), so it validates and previews with exactly the code Lambda runs, from an installed
package as from the tree. Only the development commands need the repository's `local/` package
(activation_cli.development).
"""
