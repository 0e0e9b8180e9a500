set terminal pngcairo size 800,500
set output 'modality.png'
set xlabel 'unstructured sparsity of the pruned tower(s) (%)'
set ylabel 'test accuracy (%)'
set key outside bottom center horizontal
set grid
set title 'Modality: Wanda, prune only'
plot 'modality.dat' index 0 with linespoints lw 2 title 'fashion, both towers', 'modality.dat' index 1 with linespoints lw 2 title 'fashion, language only', 'modality.dat' index 2 with linespoints lw 2 title 'fashion, vision only', 'modality.dat' index 3 with linespoints lw 2 title 'shapes, both towers', 'modality.dat' index 4 with linespoints lw 2 title 'shapes, language only', 'modality.dat' index 5 with linespoints lw 2 title 'shapes, vision only'
