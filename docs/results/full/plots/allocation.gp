set terminal pngcairo size 800,500
set output 'allocation.png'
set xlabel 'vision sparsity s_v (%)'
set ylabel 'test accuracy (%)'
set key outside bottom center horizontal
set grid
set title 'Allocation: Wanda, prune only, s_v + s_l fixed'
plot 'allocation.dat' index 0 with linespoints lw 2 title 'fashion, s_v+s_l=100%', 'allocation.dat' index 1 with linespoints lw 2 title 'fashion, s_v+s_l=120%', 'allocation.dat' index 2 with linespoints lw 2 title 'shapes, s_v+s_l=100%', 'allocation.dat' index 3 with linespoints lw 2 title 'shapes, s_v+s_l=120%'
