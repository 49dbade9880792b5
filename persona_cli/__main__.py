from persona_cli.cli import main

main()
