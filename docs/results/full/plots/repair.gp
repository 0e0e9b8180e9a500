set terminal pngcairo size 1000,820 font ',11'
set output 'repair.png'
set multiplot layout 2,1 title 'Repair: prune only vs prune + RESSA (mean ± std over seeds)' font ',13'
set style data histogram
set style histogram errorbars gap 1 lw 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set yrange [0:100]
set ylabel 'test accuracy (%)'
set grid ytics
set xtics nomirror scale 0
set key outside right center vertical
set bmargin 4
set title 'fashion (dense 75.1%)'
set arrow 1 from graph 0, first 75.1 to graph 1, first 75.1 nohead dt 2 lw 1.5 lc rgb '#333333' front
plot newhistogram 'magnitude' offset 0,-0.3, 'repair.dat' index 0 using 2:3:xtic(1) lc rgb '#d95f02' title 'prune only', '' index 0 using 4:5 lc rgb '#1b9e77' title '+ RESSA', newhistogram 'wanda' offset 0,-0.3, 'repair.dat' index 1 using 2:3:xtic(1) lc rgb '#d95f02' notitle, '' index 1 using 4:5 lc rgb '#1b9e77' notitle, newhistogram 'sparsegpt' offset 0,-0.3, 'repair.dat' index 2 using 2:3:xtic(1) lc rgb '#d95f02' notitle, '' index 2 using 4:5 lc rgb '#1b9e77' notitle, newhistogram 'dsnot' offset 0,-0.3, 'repair.dat' index 3 using 2:3:xtic(1) lc rgb '#d95f02' notitle, '' index 3 using 4:5 lc rgb '#1b9e77' notitle, keyentry with lines dt 2 lw 1.5 lc rgb '#333333' title 'dense'
set title 'shapes (dense 90.3%)'
set arrow 1 from graph 0, first 90.3 to graph 1, first 90.3 nohead dt 2 lw 1.5 lc rgb '#333333' front
plot newhistogram 'magnitude' offset 0,-0.3, 'repair.dat' index 4 using 2:3:xtic(1) lc rgb '#d95f02' title 'prune only', '' index 4 using 4:5 lc rgb '#1b9e77' title '+ RESSA', newhistogram 'wanda' offset 0,-0.3, 'repair.dat' index 5 using 2:3:xtic(1) lc rgb '#d95f02' notitle, '' index 5 using 4:5 lc rgb '#1b9e77' notitle, newhistogram 'sparsegpt' offset 0,-0.3, 'repair.dat' index 6 using 2:3:xtic(1) lc rgb '#d95f02' notitle, '' index 6 using 4:5 lc rgb '#1b9e77' notitle, newhistogram 'dsnot' offset 0,-0.3, 'repair.dat' index 7 using 2:3:xtic(1) lc rgb '#d95f02' notitle, '' index 7 using 4:5 lc rgb '#1b9e77' notitle, keyentry with lines dt 2 lw 1.5 lc rgb '#333333' title 'dense'
unset multiplot
