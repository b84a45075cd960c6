"""coralseg's tests (a package, so that ``tests`` means this folder and not the test package
mmsegmentation's wheel installs into site-packages)."""
