set terminal pngcairo size 1000,820 font ',11'
set output 'repair.png'
set multiplot layout 2,1 title 'Repair: prune only vs prune + RESSA' font ',13'
set style data histogram
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set yrange [0:100]
set ylabel 'test accuracy (%)'
set grid ytics
set xtics nomirror scale 0
set key outside right center vertical
set bmargin 4
set title 'fashion (dense 86.3%)'
set arrow 1 from graph 0, first 86.3 to graph 1, first 86.3 nohead dt 2 lw 1.5 lc rgb '#333333' front
plot newhistogram 'wanda' offset 0,-0.3, 'repair.dat' index 0 using 2:xtic(1) lc rgb '#d95f02' title 'prune only', '' index 0 using 4 lc rgb '#1b9e77' title '+ RESSA', newhistogram 'sparsegpt' offset 0,-0.3, 'repair.dat' index 1 using 2:xtic(1) lc rgb '#d95f02' notitle, '' index 1 using 4 lc rgb '#1b9e77' notitle, keyentry with lines dt 2 lw 1.5 lc rgb '#333333' title 'dense'
set title 'shapes (dense 90.3%)'
set arrow 1 from graph 0, first 90.3 to graph 1, first 90.3 nohead dt 2 lw 1.5 lc rgb '#333333' front
plot newhistogram 'wanda' offset 0,-0.3, 'repair.dat' index 2 using 2:xtic(1) lc rgb '#d95f02' title 'prune only', '' index 2 using 4 lc rgb '#1b9e77' title '+ RESSA', newhistogram 'sparsegpt' offset 0,-0.3, 'repair.dat' index 3 using 2:xtic(1) lc rgb '#d95f02' notitle, '' index 3 using 4 lc rgb '#1b9e77' notitle, keyentry with lines dt 2 lw 1.5 lc rgb '#333333' title 'dense'
unset multiplot
