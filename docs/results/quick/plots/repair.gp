set terminal pngcairo size 900,500
set output 'qboth/plots/repair.png'
set style data histogram
set style histogram cluster gap 1
set style fill solid 0.8 border -1
set ylabel 'test accuracy (%)'
set xtics rotate by -30
set key top right
set grid ytics
set title 'Repair: prune only vs prune + RESSA'
plot 'qboth/plots/repair.dat' using 2:xtic(1) title 'prune only', '' using 3 title '+ RESSA'
