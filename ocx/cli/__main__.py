from ocx.cli import main

main()
