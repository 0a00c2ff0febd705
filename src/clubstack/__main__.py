from clubstack.cli import main

main()
