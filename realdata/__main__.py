from realdata.entry import main

main()
