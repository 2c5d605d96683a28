from realdata.cli import main

main()
