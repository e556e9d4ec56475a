from dashboard.serve import main

main()
