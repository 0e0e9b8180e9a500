set terminal pngcairo size 900,450
set output 'owl_layers.png'
set xlabel 'pruned layer (vision blocks, then language blocks)'
set ylabel 'sparsity (%)'
set key outside bottom center horizontal
set grid
set title 'OWL: per-layer sparsity (uniform allocation: the same ratio in every layer)'
plot 'owl_layers.dat' index 0 with linespoints lw 2 title 'fashion, wanda 70% OWL', 'owl_layers.dat' index 1 with linespoints lw 2 title 'shapes, wanda 70% OWL'
